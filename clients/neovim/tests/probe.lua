-- Watches the Neovim started with tests/prompt.lua over its --listen socket (run as
-- `nvim -l probe.lua SOCKET OUT`): polls nvim_get_mode (answered even while Neovim waits at a
-- prompt) until the server's fallback warning is in the message history, and records whether
-- Neovim was ever blocked at a hit-enter prompt ("r" mode) meanwhile. Writes JSON to OUT.
local sock, out_path = arg[1], arg[2]
local timeout_ms = tonumber(os.getenv("ZL_E2E_STEP_MS") or "120000")
local R = { blocked = vim.NIL }
local ch
local ok, why = pcall(function()
  assert(vim.wait(timeout_ms, function()
    local ok_connect, id = pcall(vim.fn.sockconnect, "pipe", sock, { rpc = true })
    ch = ok_connect and id > 0 and id or nil
    return ch ~= nil
  end, 100), "could not connect to " .. sock)
  local start = vim.uv.now()
  while true do
    local mode = vim.rpcrequest(ch, "nvim_get_mode")
    if mode.blocking then
      R.blocked = mode
      -- Let it go on (and quit) rather than hang: the test fails on R.blocked.
      vim.rpcrequest(ch, "nvim_input", "<CR>")
      break
    end
    local history = vim.rpcrequest(ch, "nvim_exec2", "messages", { output = true }).output
    if history:find("Default model", 1, true) then
      R.history = history
      R.mode_after = vim.rpcrequest(ch, "nvim_get_mode")
      R.blocked = R.mode_after.blocking and R.mode_after or vim.NIL
      R.echospace = vim.rpcrequest(ch, "nvim_get_vvar", "echospace")
      break
    end
    if vim.uv.now() - start > timeout_ms then
      error("timed out waiting for the fallback warning in :messages", 0)
    end
    vim.wait(100)
  end
end)
if not ok then
  R.error = tostring(why)
end
if ch then
  pcall(vim.rpcrequest, ch, "nvim_exec_lua", [[
    for _, c in ipairs(vim.lsp.get_clients({ name = "zero_latency" })) do c:stop() end
    vim.wait(5000, function() return #vim.lsp.get_clients({ name = "zero_latency" }) == 0 end, 50)
    vim.schedule(function() vim.cmd("qall!") end)
  ]], {})
end
local f = assert(io.open(out_path, "w"))
f:write(vim.json.encode(R))
f:close()
