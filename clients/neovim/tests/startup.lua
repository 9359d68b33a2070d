-- Driver for tests/test_neovim_startup.py (headless part): a real Neovim and the real
-- `zl serve` starting on an already indexed workspace with the default model unavailable, so
-- the server falls back to the bundled one and warns (window/showMessage, Warning). Records
-- how the warning reached vim.notify, and every :ZlStatus line from the first moment until the
-- server is ready. Inputs: ZL_E2E_* in the environment; output: JSON in $ZL_E2E_OUT.
local out_path = assert(os.getenv("ZL_E2E_OUT"), "ZL_E2E_OUT not set")
local ws = assert(os.getenv("ZL_E2E_WS"), "ZL_E2E_WS not set")
local step_ms = tonumber(os.getenv("ZL_E2E_STEP_MS") or "120000")

local R = { messages = {}, status_lines = {}, states = {} }
vim.notify = function(msg, level)
  table.insert(R.messages, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

local function wait_for(what, cond)
  if not vim.wait(step_ms, cond, 20) then
    error(("timed out after %d ms waiting for %s"):format(step_ms, what), 0)
  end
end

local function main()
  vim.cmd("filetype on")
  vim.cmd("runtime! plugin/zero_latency.lua")
  local zl = require("zero_latency")
  local client = require("zero_latency.client")
  zl.setup({
    cmd = vim.json.decode((assert(os.getenv("ZL_E2E_CMD"), "ZL_E2E_CMD not set"))),
    init_options = vim.json.decode(os.getenv("ZL_E2E_INIT") or "{}"),
    picker = "quickfix",
  })

  -- Lines for the contract's shapes while the server is busy (docs/status "state").
  R.format_loading = zl.format_status({ state = "loading", files = 0, chunks = 0,
    model = {}, store = {} })
  R.format_indexing = zl.format_status({ state = "indexing", files = 120, chunks = 26100,
    workspaces = { { uri = vim.uri_from_fname(ws), files = 120, chunks = 26100,
      keywordChunks = 26100, embeddedChunks = 412 } }, model = {}, store = {} })

  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/keys.md"))
  wait_for("the client to attach and initialize", function()
    local c = vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 })[1]
    return c ~= nil and c.initialized == true
  end)
  local c = vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 })[1]

  -- :ZlStatus from the first moment, as a user typing it during startup would, until ready.
  local ready = false
  while not ready do
    local done = false
    zl.status(function(err, result)
      if err then
        error("docs/status failed: " .. vim.inspect(err), 0)
      end
      table.insert(R.states, { state = result.state, files = result.files,
        workspaces = result.workspaces or vim.NIL })
      table.insert(R.status_lines, zl.format_status(result, c))
      ready = (result.state == "idle" or result.state == "ready") and (result.pendingFiles or 0) == 0
        and (result.files or 0) > 0
      done = true
    end)
    wait_for("docs/status", function()
      return done
    end)
  end

  -- The fallback warning: sent by the server when the model loaded, before it is ready.
  wait_for("the fallback warning", function()
    for _, m in ipairs(R.messages) do
      if m.msg:find("unavailable", 1, true) then
        return true
      end
    end
    return false
  end)
  R.server_messages = client.messages[c.id] or vim.NIL
  vim.cmd("checkhealth zero_latency")
  R.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd("tabclose")

  -- With no server attached, :checkhealth reads `zl status --json` for the current directory.
  client._call(c, "stop")
  wait_for("the client to stop", function()
    return #vim.lsp.get_clients({ name = "zero_latency" }) == 0
  end)
  vim.cmd("checkhealth zero_latency")
  R.health_cli = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end

local ok, why = xpcall(main, debug.traceback)
if not ok then
  R.error = why
end
local f = assert(io.open(out_path, "w"))
f:write(vim.json.encode(R))
f:close()
for _, c in ipairs(vim.lsp.get_clients({ name = "zero_latency" })) do
  require("zero_latency.client")._call(c, "stop")
end
vim.wait(5000, function()
  return #vim.lsp.get_clients({ name = "zero_latency" }) == 0
end, 50)
vim.cmd("qall!")
