-- Zero-Latency for Neovim: a thin client for the `zl serve` sidecar.
-- The server owns indexing, ranking and sync; this plugin starts it through `vim.lsp`, sends
-- the custom `docs/*` requests and shows their results. Requires Neovim 0.10+.
local M = {}

---@class zero_latency.Config
M.defaults = {
  -- Command that starts the sidecar on stdio (string[]; `zero-latency serve` works too).
  cmd = { "zl", "serve" },
  -- Sent as LSP `initializationOptions`: the same keys as `.zero-latency.toml`
  -- (model, storePath, storeUrl, include, exclude, chunkTokens, debounceMs, ...).
  init_options = {},
  -- The workspace root is the nearest ancestor holding one of these (see |vim.fs.root()|).
  root_markers = { ".git", ".zero-latency.toml" },
  -- No root marker above a buffer: use the current directory if the file is under it.
  fallback_to_cwd = true,
  -- Buffers of these file types attach to the server (for live, unsaved-buffer search): every
  -- type the server indexes (server/zero_latency/chunking.py: .md .markdown .mdx .rst .py
  -- .txt .text .adoc .org).
  filetypes = { "markdown", "markdown.mdx", "mdx", "rst", "python", "text", "asciidoc",
    "asciidoctor", "org" },
  -- Start/attach automatically on FileType; false: only the commands start the server.
  auto_attach = true,
  -- Where :ZlSearch shows hits: "auto" | "telescope" | "fzf_lua" | "select" | "quickfix".
  picker = "auto",
  -- Passed through to docs/search.
  search = { limit = 20, mode = "hybrid", include = nil, exclude = nil },
  -- Passed through to docs/related (:ZlRelated).
  related = { limit = 10 },
  -- Open the quickfix window after filling it.
  open_quickfix = true,
  -- Echo the server's `$/progress` (indexing: percentage, counts, rate, ETA) as one short line,
  -- at most once a second, and when it ends. The statusline component works either way.
  progress = true,
  -- Milliseconds to wait for a reply in synchronous paths (:checkhealth).
  timeout_ms = 10000,
}

M.config = vim.deepcopy(M.defaults)
M._did_setup = false

M.NAME = "zero_latency"

---@param opts? table
function M.setup(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("zero_latency.setup: expected a table, got " .. type(opts))
  end
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Lists replace, never merge index-by-index with the defaults.
  for _, key in ipairs({ "cmd", "root_markers", "filetypes" }) do
    if opts[key] ~= nil then
      M.config[key] = opts[key]
    end
  end
  local valid_pickers = { auto = 1, telescope = 1, fzf_lua = 1, select = 1, quickfix = 1 }
  if not valid_pickers[M.config.picker] then
    error(("zero_latency: picker must be one of auto, telescope, fzf_lua, select, quickfix (got %s)")
      :format(vim.inspect(M.config.picker)))
  end
  M._did_setup = true

  local group = vim.api.nvim_create_augroup("zero_latency", { clear = true })
  if M.config.auto_attach then
    vim.api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = M.config.filetypes,
      callback = function(args)
        require("zero_latency.client").attach(args.buf)
      end,
      desc = "zero_latency: attach document buffers to the sidecar",
    })
    -- setup() may run after buffers were loaded (lazy plugin managers): attach those too.
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(M.config.filetypes, vim.bo[buf].filetype) then
        require("zero_latency.client").attach(buf)
      end
    end
  end
  -- Progress is tracked even with config.progress off: the statusline component shows it.
  vim.api.nvim_create_autocmd("LspProgress", {
    group = group,
    pattern = { "begin", "report", "end" },
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= M.NAME then
        return
      end
      require("zero_latency.progress").on_progress(client.id, args.data.params or {},
        M.config.progress and true or false)
    end,
    desc = "zero_latency: indexing progress for the statusline and the echo area",
  })
end

---Statusline component: indexing progress with its percentage ("Zero-Latency: indexing 37%
---412/26,100 chunks embedded · 57/s · ~7 min left"), the server's state while it is not ready,
---else "". For 'statusline': `%{%v:lua.require'zero_latency'.statusline()%}`; lualine:
---`function() return require("zero_latency").statusline({ raw = true }) end`.
---@param opts? { raw?: boolean, bufnr?: integer }
---@return string
function M.statusline(opts)
  return require("zero_latency.progress").statusline(opts)
end

-- Commands work without setup() (defaults), so a bare `set rtp+=` install is usable.
function M.get_config()
  return M.config
end

---Search the workspace. `opts` overrides config.search and config.picker for this call.
---@param query? string  nil or empty: prompt with vim.ui.input
---@param opts? table
function M.search(query, opts)
  require("zero_latency.search").run(query, opts)
end

---Passages from other files related to the paragraph or section at the cursor (:ZlRelated).
---`opts`: picker, limit, on_done(err, result, picker).
---@param opts? table
function M.related(opts)
  require("zero_latency.related").run(opts)
end

---Re-index the workspace (force: re-embed unchanged content too).
---@param force? boolean
---@param on_done? fun(err: table?, result: table?)
function M.index(force, on_done)
  local client = require("zero_latency.client")
  client.with_client(nil, function(c)
    local msg = force and "Zero-Latency: re-indexing (force)..." or "Zero-Latency: indexing..."
    vim.api.nvim_echo({ { msg } }, false, {})
    client.request(c, "docs/index", { force = force or false }, function(err, result)
      if on_done then
        on_done(err, result)
      end
      if err then
        client.notify_error("docs/index", err)
        return
      end
      local summary = ("Zero-Latency: %d files (%d indexed, %d unchanged, %d removed), %d chunks in %.1f s")
        :format(result.files or 0, result.indexedFiles or 0, result.unchangedFiles or 0,
          result.removedFiles or 0, result.chunks or 0, (result.elapsedMs or 0) / 1000)
      if result.errors and #result.errors > 0 then
        summary = summary .. (" — %d errors, first: %s: %s"):format(#result.errors,
          vim.uri_to_fname(result.errors[1].uri), result.errors[1].message)
        vim.notify(summary, vim.log.levels.WARN)
      else
        vim.api.nvim_echo({ { summary } }, true, {})
      end
    end)
  end)
end

-- The :ZlStatus float, while it is open.
local status_win

local function close_status()
  if status_win and vim.api.nvim_win_is_valid(status_win) then
    vim.api.nvim_win_close(status_win, true)
  end
  status_win = nil
end

---Shows `lines` in a small float at the editor's top right (no hit-enter prompt, whatever its
---length; the statusline keeps updating). It closes when the cursor moves, on <Esc>-like
---edits, on leaving the buffer, or after 15 s.
---@param lines string[]
---@return integer win
function M.show_float(lines)
  close_status()
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].bufhidden = "wipe"
  local width = 0
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.max(10, math.min(width, vim.o.columns - 4))
  local win = vim.api.nvim_open_win(buf, false, {
    relative = "editor", anchor = "NE", row = 1, col = vim.o.columns - 1,
    width = width, height = math.min(#lines, math.max(1, vim.o.lines - 4)),
    style = "minimal", border = "rounded", focusable = false, noautocmd = true,
    title = " Zero-Latency ", title_pos = "left",
  })
  vim.wo[win].wrap = false
  status_win = win
  local group = vim.api.nvim_create_augroup("zero_latency_status_float", { clear = true })
  vim.api.nvim_create_autocmd({ "CursorMoved", "CursorMovedI", "InsertEnter", "BufLeave", "WinLeave" }, {
    group = group, once = true, callback = close_status,
  })
  vim.defer_fn(function()
    if status_win == win then
      close_status()
    end
  end, 15000)
  return win
end

---The status as lines for the float: state and counts, progress, model, store, root, the last
---error's first sentence (the whole is in :checkhealth zero_latency).
---@param s table docs/status result
---@param c? vim.lsp.Client
---@return string[]
function M.status_lines(s, c)
  local lines = vim.split(M.format_status(s, c), " | ", { plain = true })
  for _, refused in ipairs(s.refusedFolders or {}) do
    table.insert(lines, ("refused %s: %s"):format(vim.uri_to_fname(refused.uri), refused.reason))
  end
  if s.languageNotice then -- the server's sentence: which languages, and what to set
    table.insert(lines, "languages: " .. s.languageNotice)
  end
  if s.lastError then
    local first = s.lastError:gsub("\n.*", "")
    table.insert(lines, "last error: " .. (first:match("^(.-%.)%s") or first)
      .. " (:checkhealth zero_latency has it whole)")
  end
  return lines
end

---:ZlStatus: the status in a float (never a hit-enter prompt).
---@param on_done? fun(err: table?, result: table?)
function M.status(on_done)
  local client = require("zero_latency.client")
  client.with_client(nil, function(c)
    client.request(c, "docs/status", vim.empty_dict(), function(err, result)
      if on_done then
        on_done(err, result)
      end
      if err then
        client.notify_error("docs/status", err)
        return
      end
      M.show_float(M.status_lines(result, c))
    end)
  end)
end

local function sum_workspaces(s, key)
  if type(s[key]) == "number" then
    return s[key]
  end
  local total, seen = 0, false
  for _, ws in ipairs(s.workspaces or {}) do
    if type(ws[key]) == "number" then
      total, seen = total + ws[key], true
    end
  end
  return seen and total or nil
end

---Group digits: 26100 → "26,100".
local function count(n)
  local digits = tostring(math.floor(n or 0))
  return (digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

---One status line. While the server is loading or indexing and has no counts yet, it says so
---instead of "0 files, 0 chunks" (the workspace may well be indexed).
---@param s table docs/status result
---@param c? vim.lsp.Client
function M.format_status(s, c)
  local model = s.model or {}
  local store = s.store or {}
  local state = s.state or "?"
  local busy = state ~= "ready" and state ~= "idle" and state ~= "error"
  local files, chunks = s.files or 0, s.chunks or 0
  -- A server that has not opened this client's workspace yet (its first moments) counts
  -- nothing for it: that is not an empty workspace either.
  local opened = c == nil or c.root_dir == nil
  for _, ws in ipairs(s.workspaces or {}) do
    if not opened and type(ws.uri) == "string" and vim.uri_to_fname(ws.uri) == c.root_dir then
      opened = true
    end
  end
  local line
  if files == 0 and chunks == 0 and (busy or not opened) then
    line = ("Zero-Latency [%s] %s"):format(state, state == "indexing" and "counting the index..."
      or not opened and "opening the workspace..." or "reading the index...")
  else
    line = ("Zero-Latency [%s] %s files, %s chunks"):format(state, count(files), count(chunks))
    local embedded = sum_workspaces(s, "embeddedChunks")
    local keyword = sum_workspaces(s, "keywordChunks")
    if embedded and keyword and embedded < keyword then
      line = line .. (" (%s/%s embedded)"):format(count(embedded), count(keyword))
    end
  end
  if (s.pendingFiles or 0) > 0 then
    line = line .. (", %d pending"):format(s.pendingFiles)
  end
  local progress = require("zero_latency.progress")
  local work = progress.current()
  if work then
    line = line .. " | " .. progress.format(work)
  end
  local runs_on = model.device or "?"
  if model.runtime then
    runs_on = runs_on .. ", " .. model.runtime
  end
  line = line .. (" | model %s (%s, %s) | store %s: %s"):format(model.id or "?",
    tostring(model.dimension or "?"), runs_on, store.kind or "?", store.location or "?")
  if c and c.root_dir then
    line = line .. " | root " .. c.root_dir
  end
  return line
end

return M
