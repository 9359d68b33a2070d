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
  -- Open the quickfix window after filling it.
  open_quickfix = true,
  -- Echo a short line when the server's `$/progress` work ends (indexing done).
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
  if M.config.progress then
    -- `end` carries no title: remember it from `begin`, per client and token.
    local titles = {}
    vim.api.nvim_create_autocmd("LspProgress", {
      group = group,
      pattern = { "begin", "end" },
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if not client or client.name ~= M.NAME then
          return
        end
        local params = args.data.params or {}
        local value = params.value or {}
        local key = client.id .. ":" .. tostring(params.token)
        if value.kind == "begin" then
          titles[key] = value.title
        elseif value.kind == "end" then
          local title = titles[key] or "Zero-Latency"
          titles[key] = nil
          vim.api.nvim_echo({ { ("%s: %s"):format(title, value.message or "done") } }, false, {})
        end
      end,
      desc = "zero_latency: report finished indexing",
    })
  end
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

---Echo one status line.
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
      vim.api.nvim_echo({ { M.format_status(result, c) } }, true, {})
      if result.lastError then
        vim.notify("Zero-Latency: last error: " .. result.lastError, vim.log.levels.WARN)
      end
    end)
  end)
end

---@param s table docs/status result
---@param c? vim.lsp.Client
function M.format_status(s, c)
  local model = s.model or {}
  local store = s.store or {}
  local line = ("Zero-Latency [%s] %d files, %d chunks"):format(s.state or "?", s.files or 0, s.chunks or 0)
  if (s.pendingFiles or 0) > 0 then
    line = line .. (", %d pending"):format(s.pendingFiles)
  end
  line = line .. (" | model %s (%s, %s) | store %s: %s"):format(model.id or "?",
    tostring(model.dimension or "?"), model.device or "?", store.kind or "?", store.location or "?")
  if c and c.root_dir then
    line = line .. " | root " .. c.root_dir
  end
  return line
end

return M
