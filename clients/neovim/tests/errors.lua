-- Driver for tests/test_neovim_errors.py: a real Neovim and the real `zl serve` on a workspace
-- whose store files are damaged. Checks that the plugin reads RequestFailed's data.kind
-- (protocol/spec.md "Errors", revision 1.1): it names the failure and offers :ZlIndex!, which
-- rebuilds the store. Inputs: ZL_E2E_* in the environment; output: JSON in $ZL_E2E_OUT.
local out_path = assert(os.getenv("ZL_E2E_OUT"), "ZL_E2E_OUT not set")
local ws = assert(os.getenv("ZL_E2E_WS"), "ZL_E2E_WS not set")
local step_ms = tonumber(os.getenv("ZL_E2E_STEP_MS") or "60000")

local R = { messages = {} }
vim.notify = function(msg, level)
  table.insert(R.messages, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

local function wait_for(what, cond)
  if not vim.wait(step_ms, cond, 50) then
    error(("timed out after %d ms waiting for %s"):format(step_ms, what), 0)
  end
end

local function await(what, start)
  local done, res = false, nil
  start(function(...)
    res = { ... }
    done = true
  end)
  wait_for(what, function()
    return done
  end)
  return unpack(res)
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
  -- The codes with an LSP meaning are not mistaken for application failures.
  R.kind_of_not_initialized = client.error_kind({ code = -32002, message = "early",
    data = { kind = "storeUnavailable" } }) or vim.NIL
  R.kind_of_unknown = client.error_kind({ code = -32803, message = "new",
    data = { kind = "somethingNew" } }) or vim.NIL
  R.text_of_unknown = client.error_text("docs/search", { code = -32803, message = "new",
    data = { kind = "somethingNew" } })
  R.text_of_not_initialized = client.error_text("docs/search", { code = -32002, message = "early" })

  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/keys.md"))
  wait_for("the client to attach and initialize", function()
    local c = vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 })[1]
    return c ~= nil and c.initialized == true
  end)

  -- :ZlIndex on the damaged store: RequestFailed with data.kind = storeCorrupt.
  local err = await(":ZlIndex", function(done)
    zl.index(false, done)
  end)
  R.index_error = err or vim.NIL
  R.index_error_kind = client.error_kind(err) or vim.NIL

  -- :ZlIndex! rebuilds it, then search works.
  local ferr, fres = await(":ZlIndex!", function(done)
    zl.index(true, done)
  end)
  R.force_error = ferr or vim.NIL
  R.force_result = fres or vim.NIL
  local serr, sres = await("search", function(done)
    zl.search(os.getenv("ZL_E2E_QUERY"), { on_done = done })
  end)
  R.search_error = serr or vim.NIL
  R.search_hits = sres and #(sres.hits or {}) or 0
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
