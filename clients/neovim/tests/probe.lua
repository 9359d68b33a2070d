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
  if R.blocked ~= vim.NIL then
    return
  end
  ---Polls until `probe()` returns a value; fails on a hit-enter prompt meanwhile.
  local function watch(what, probe)
    local since = vim.uv.now()
    while true do
      local mode = vim.rpcrequest(ch, "nvim_get_mode")
      if mode.blocking then
        R.blocked = mode
        R.blocked_at = what
        vim.rpcrequest(ch, "nvim_input", "<CR>")
        return nil
      end
      local value = probe()
      if value ~= nil and value ~= vim.NIL and value ~= false then
        return value
      end
      if vim.uv.now() - since > timeout_ms then
        error("timed out waiting for " .. what, 0)
      end
      vim.wait(100)
    end
  end
  -- :ZlStatus as a user types it: a float with the status, no "Press ENTER".
  vim.rpcrequest(ch, "nvim_input", ":ZlStatus<CR>")
  R.status_float = watch("the :ZlStatus float", function()
    return vim.rpcrequest(ch, "nvim_exec_lua", [[
      for _, w in ipairs(vim.api.nvim_list_wins()) do
        if vim.api.nvim_win_get_config(w).relative ~= "" then
          return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false)
        end
      end
      return false
    ]], {})
  end)
  if R.blocked ~= vim.NIL then
    return
  end
  -- The statusline still updates meanwhile: the screen is not held by a prompt.
  R.mode_after_status = vim.rpcrequest(ch, "nvim_get_mode")
  -- A search that finds nothing says why, on one line.
  vim.rpcrequest(ch, "nvim_input", "<Esc>:ZlSearch xqzvbnmw plokijuh<CR>")
  R.empty_search = watch("the empty search's message", function()
    local history = vim.rpcrequest(ch, "nvim_exec2", "messages", { output = true }).output
    for line in history:gmatch("[^\n]+") do
      if line:find("Zero-Latency: ", 1, true) and (line:find("nothing for", 1, true)
          or line:find("match", 1, true) or line:find("indexed", 1, true)) then
        return line
      end
    end
    return false
  end)
  R.mode_after_search = vim.rpcrequest(ch, "nvim_get_mode")
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
