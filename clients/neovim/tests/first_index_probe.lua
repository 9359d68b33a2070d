-- Watches the Neovim started with tests/prompt.lua (its real TUI, 80x24) over its --listen
-- socket (run as `nvim -l first_index_probe.lua SOCKET OUT`) during a first index whose dense
-- backfill is held back by the workspace's real setting (backfillChunksPerSecond): once the
-- run reports its embedding phase, `:ZlSearch` of gibberish, typed as a user types it, must
-- say in one line why nothing was found while the backfill still runs, and never stop Neovim
-- at a hit-enter prompt. Writes JSON to OUT.
local sock, out_path = arg[1], arg[2]
local timeout_ms = tonumber(os.getenv("ZL_E2E_STEP_MS") or "180000")
local R = { blocked = vim.NIL }
local ch

-- (The socket may answer before Neovim has read its --cmd: the plugin may not be found yet.)
local EMBEDDING = [[
  local found, p = pcall(require, "zero_latency.progress")
  if not found then
    return false
  end
  for _, work in pairs(p.active) do
    if p.phase(work) == "embedding" then
      return p.format(work)
    end
  end
  return false
]]

local ok, why = pcall(function()
  assert(vim.wait(timeout_ms, function()
    local ok_connect, id = pcall(vim.fn.sockconnect, "pipe", sock, { rpc = true })
    ch = ok_connect and id > 0 and id or nil
    return ch ~= nil
  end, 100), "could not connect to " .. sock)
  ---Polls until `probe()` returns a value; records a hit-enter prompt meanwhile (and stops).
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
  -- The run has reached its backfill: every file is keyword-searchable, meaning arrives.
  R.progress_before = watch("the embedding phase of the first index", function()
    return vim.rpcrequest(ch, "nvim_exec_lua", EMBEDDING, {})
  end)
  if R.blocked ~= vim.NIL then
    return
  end
  vim.rpcrequest(ch, "nvim_input", ":ZlSearch xqzvbnmw plokijuh<CR>")
  local started = vim.uv.now()
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
  R.waited_ms = vim.uv.now() - started
  -- Still during the first index: the backfill had not finished when the message came.
  R.progress_after = vim.rpcrequest(ch, "nvim_exec_lua", EMBEDDING, {})
  R.mode_after_search = vim.rpcrequest(ch, "nvim_get_mode")
  R.echospace = vim.rpcrequest(ch, "nvim_get_vvar", "echospace")
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
