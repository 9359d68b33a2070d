-- Starting, finding and talking to the sidecar: one `vim.lsp` client per workspace root,
-- reused by every buffer under that root. The wire contract (docs/* requests, zl/status,
-- errors) is protocol/spec.md in the project's repository.
local M = {}

local NAME = "zero_latency"
-- 0.11 made Client methods colon-calls and deprecated the 0.10 dot-call closures.
local HAS_011 = vim.fn.has("nvim-0.11") == 1

M.INSTALL_HINT = "Install the server with `pip install '/path/to/your/zero-latency-clone[offline]'` "
  .. "(so that `zl --version` works), or point `cmd` at it: require('zero_latency').setup{ cmd = { '/path/to/zl', 'serve' } }."

-- Callbacks waiting for a client's `initialize` reply, by client id.
local pending = {}
-- Commands we already warned about (missing executable), so the warning shows once.
local warned_missing = {}

local function config()
  return require("zero_latency").config
end

-- vim.lsp.get_log_path() is deprecated since 0.12; the log module's function exists in 0.10 too.
function M.log_path()
  return require("vim.lsp.log").get_filename()
end

---@param client vim.lsp.Client
local function call(client, method, ...)
  if HAS_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

---The workspace root for a buffer or a path (nil: current directory).
---@param source? integer|string
---@param explicit? boolean a command asked: fall back to the current directory in any case
---@return string?
function M.resolve_root(source, explicit)
  local cfg = config()
  local path
  if type(source) == "number" then
    if vim.bo[source].buftype == "" then
      path = vim.api.nvim_buf_get_name(source)
    end
    if path == "" then
      path = nil
    end
  elseif type(source) == "string" and source ~= "" then
    path = source
  end
  local cwd = vim.fn.getcwd()
  local root = vim.fs.root(path or cwd, cfg.root_markers)
  if not root and (explicit or cfg.fallback_to_cwd) then
    local abs = path and vim.fs.normalize(vim.fn.fnamemodify(path, ":p")) or nil
    local prefix = vim.fs.normalize(cwd):gsub("/$", "") .. "/"
    if explicit or not abs or abs:sub(1, #prefix) == prefix then
      root = cwd
    end
  end
  return root and vim.fs.normalize(root) or nil
end

---A running client for `root`, if any.
---@param root string
---@return vim.lsp.Client?
function M.find(root)
  for _, c in ipairs(vim.lsp.get_clients({ name = NAME })) do
    if c.root_dir == root then
      return c
    end
  end
end

---Is the server command there? Returns false and a message saying how to install it if not.
---@return boolean, string?
local function executable_ok()
  local cmd = config().cmd
  if type(cmd) ~= "table" then
    return true -- a function cmd (0.11+): nothing we can check here
  end
  if vim.fn.executable(cmd[1]) == 1 then
    return true
  end
  return false, ("Zero-Latency: server command %q not found. %s"):format(tostring(cmd[1]), M.INSTALL_HINT)
end

-- What the server told each client with window/showMessage, in full (the echo area shows a
-- shortened line; :checkhealth lists these). By client id, the last MAX_MESSAGES each.
M.messages = {}
local MAX_MESSAGES = 20

---Is vim.notify Neovim's own (an echo: long text raises a hit-enter prompt), not a
---notification plugin's (nvim-notify, snacks, noice, fidget... show any length)?
---@return boolean
function M.notify_is_builtin()
  local info = debug.getinfo(vim.notify, "S")
  return info ~= nil and info.source ~= nil and info.source:match("vim/_editor%.lua$") ~= nil
end

---vim.notify that never raises a hit-enter prompt below ERROR: with Neovim's own vim.notify the
---text is cut to one line that fits the echo area (the full text is in the LSP log and in
---:checkhealth zero_latency); a notification plugin gets it whole.
---@param msg string
---@param level integer vim.log.levels
function M.notify(msg, level)
  if level >= vim.log.levels.ERROR or not M.notify_is_builtin() then
    vim.notify(msg, level, { title = "Zero-Latency" })
    return
  end
  local line = msg:gsub("%s*\n%s*", " ")
  local room = math.max(vim.v.echospace - 1, 20)
  if vim.fn.strdisplaywidth(line) > room then
    local hint = "… :checkhealth zero_latency"
    line = vim.fn.strcharpart(line, 0, math.max(room - vim.fn.strdisplaywidth(hint), 10)) .. hint
  end
  vim.notify(line, level)
end

-- LSP MessageType → vim.log.levels (Log and Debug go to the LSP log only).
local MESSAGE_LEVELS = {
  [1] = vim.log.levels.ERROR,
  [2] = vim.log.levels.WARN,
  [3] = vim.log.levels.INFO,
}

---window/showMessage: the server's warnings (a model fallback at startup, a store problem).
---Neovim's default handler echoes the whole text, which at startup is a hit-enter prompt.
local function show_message(_, params, ctx)
  local text = "Zero-Latency: " .. tostring(params.message)
  local kept = M.messages[ctx.client_id] or {}
  M.messages[ctx.client_id] = kept
  table.insert(kept, { type = params.type, message = params.message })
  if #kept > MAX_MESSAGES then
    table.remove(kept, 1)
  end
  local level = MESSAGE_LEVELS[params.type]
  local log = require("vim.lsp.log")
  if level == vim.log.levels.ERROR then
    log.error(text)
  elseif level ~= nil then
    log.warn(text)
  else
    log.info(text)
    return vim.NIL
  end
  -- Handlers run inside the RPC callback: notify from the main loop, as the built-in one does.
  vim.schedule(function()
    M.notify(text, level)
  end)
  return vim.NIL
end

-- The last zl/status each client pushed (the docs/status object), by client id.
M.last_status = {}

---zl/status: the server's status when it changes (state, growing counts).
local function on_status(_, params, ctx)
  if type(params) == "table" then
    M.last_status[ctx.client_id] = params
    vim.schedule(function()
      vim.cmd("redrawstatus!")
    end)
  end
  return vim.NIL
end

---@param root string
local function client_config(root)
  local cfg = config()
  return {
    name = NAME,
    cmd = cfg.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = cfg.init_options,
    handlers = {
      ["window/showMessage"] = show_message,
      ["zl/status"] = on_status,
    },
    on_init = function(client)
      -- on_init runs once `initialize` returned; requests made before that wait here.
      local queue = pending[client.id] or {}
      pending[client.id] = nil
      for _, fn in ipairs(queue) do
        vim.schedule(function()
          fn(client)
        end)
      end
    end,
    on_exit = function(code, signal, client_id)
      pending[client_id] = nil
      M.last_status[client_id] = nil
      if code ~= 0 and vim.v.exiting == vim.NIL then
        vim.schedule(function()
          vim.notify(("Zero-Latency: server for %s exited (code %d, signal %d); see %s")
            :format(root, code, signal, M.log_path()), vim.log.levels.ERROR)
        end)
      end
    end,
  }
end

local function reuse(c, conf)
  return c.name == NAME and c.root_dir == conf.root_dir
end

---Attach a document buffer to its workspace's client, starting it if needed.
---@param bufnr integer
---@return integer? client_id
function M.attach(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  if vim.api.nvim_buf_get_name(bufnr) == "" then
    return nil -- nothing to sync: an unnamed buffer is no workspace file
  end
  local root = M.resolve_root(bufnr, false)
  if not root then
    return nil
  end
  local ok, why = executable_ok()
  if not ok then
    -- Once per command: FileType fires for every document opened.
    if not warned_missing[why] then
      warned_missing[why] = true
      vim.notify(why, vim.log.levels.ERROR)
    end
    return nil
  end
  return vim.lsp.start(client_config(root), { bufnr = bufnr, reuse_client = reuse })
end

---The client a command should talk to: the one attached to the current buffer, else the one
---for the current buffer's (or directory's) root, started if needed.
---@param bufnr? integer
---@return vim.lsp.Client?, string? error message
function M.get(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local attached = vim.lsp.get_clients({ name = NAME, bufnr = bufnr })
  if attached[1] then
    return attached[1]
  end
  local root = M.resolve_root(bufnr, true)
  local found = root and M.find(root)
  if found then
    return found
  end
  if not root then
    return nil, "Zero-Latency: no workspace root for this buffer"
  end
  local ok, why = executable_ok()
  if not ok then
    return nil, why
  end
  local id
  if vim.tbl_contains(config().filetypes, vim.bo[bufnr].filetype) and vim.api.nvim_buf_get_name(bufnr) ~= ""
    and vim.bo[bufnr].buftype == "" then
    id = vim.lsp.start(client_config(root), { bufnr = bufnr, reuse_client = reuse })
  elseif HAS_011 then
    id = vim.lsp.start(client_config(root), { attach = false })
  else
    -- 0.10 has no `attach = false`; start_client starts without attaching a buffer.
    id = vim.lsp.start_client(client_config(root))
  end
  if not id then
    return nil, ("Zero-Latency: the server did not start (%s); see %s"):format(
      table.concat(type(config().cmd) == "table" and config().cmd or {}, " "), M.log_path())
  end
  return vim.lsp.get_client_by_id(id)
end

---Run `fn(client)` once the client is initialized (right away if it is).
---@param bufnr? integer
---@param fn fun(client: vim.lsp.Client)
function M.with_client(bufnr, fn)
  local c, why = M.get(bufnr)
  if not c then
    vim.notify(why or "Zero-Latency: no server", vim.log.levels.ERROR)
    return
  end
  if c.initialized then
    fn(c)
  else
    pending[c.id] = pending[c.id] or {}
    table.insert(pending[c.id], fn)
    -- A server that rejected `initialize` (e.g. a wrong init_options type) never calls
    -- on_init: say so instead of waiting silently.
    local timeout = config().timeout_ms
    vim.defer_fn(function()
      local queue = pending[c.id]
      for i, queued in ipairs(queue or {}) do
        if queued == fn then
          table.remove(queue, i)
          vim.notify(("Zero-Latency: the server did not finish initializing within %d ms; "
            .. "see :messages and %s"):format(timeout, M.log_path()), vim.log.levels.ERROR)
          return
        end
      end
    end, timeout)
  end
end

---Send a request; `handler(err, result)` runs on the main loop. No bufnr: pending didChange
---notifications of every attached buffer are flushed first, so results see unsaved edits.
---@param client vim.lsp.Client
---@param method string
---@param params table
---@param handler fun(err: table?, result: any)
---@return integer? request_id
function M.request(client, method, params, handler)
  local ok, id = call(client, "request", method, params, function(err, result)
    handler(err, result)
  end, nil)
  if not ok then
    handler({ code = -32099, message = "the server is not running (see " .. M.log_path() .. ")" }, nil)
    return nil
  end
  return id
end

---Synchronous request (for :checkhealth). Returns err, result.
---@return table?, any
function M.request_sync(client, method, params, timeout_ms)
  local resp, why = call(client, "request_sync", method, params, timeout_ms, nil)
  if not resp then
    return { message = why or "no reply" }, nil
  end
  return resp.err, resp.result
end

-- JSON-RPC codes with an LSP meaning (protocol/spec.md, "Errors", revision 1.1).
local CODES = {
  [-32002] = "server not initialized",
  [-32601] = "not supported by this server version: update zero-latency",
  [-32602] = "invalid params",
  [-32800] = "cancelled",
}
local REQUEST_FAILED = -32803
-- RequestFailed's data.kind: what failed, and what the user can do about it here. A kind not
-- listed (a newer server) is shown as a plain failure with the server's message.
local KINDS = {
  modelUnavailable = { what = "model unavailable" },
  storeUnavailable = { what = "store unavailable" },
  storeLocked = { what = "store locked" },
  storeIncompatible = { what = "store built for another model", fix = ":ZlIndex! rebuilds it" },
  storeCorrupt = { what = "store damaged", fix = ":ZlIndex! rebuilds it" },
}

---The data.kind of a RequestFailed error (nil for any other error or an unknown kind).
---@param err table? JSON-RPC error
---@return string?
function M.error_kind(err)
  if type(err) ~= "table" or err.code ~= REQUEST_FAILED or type(err.data) ~= "table" then
    return nil
  end
  local kind = err.data.kind
  return KINDS[kind] and kind or nil
end

---The one line shown for a failed request.
---@param method string
---@param err table JSON-RPC error
---@return string
function M.error_text(method, err)
  local kind = M.error_kind(err)
  local what = kind and KINDS[kind].what or CODES[err.code]
  local text = ("Zero-Latency %s failed%s: %s"):format(method, what and (" (" .. what .. ")") or "",
    err.message or vim.inspect(err))
  if kind and KINDS[kind].fix then
    text = text .. " (" .. KINDS[kind].fix .. ")"
  end
  return text
end

---@param method string
---@param err table JSON-RPC error
function M.notify_error(method, err)
  -- Cancelled, or a method an older server does not have: nothing the user did wrong.
  local level = (err.code == -32800 or err.code == -32601) and vim.log.levels.WARN
    or vim.log.levels.ERROR
  vim.notify(M.error_text(method, err), level)
end

M.NAME = NAME
M._call = call
return M
