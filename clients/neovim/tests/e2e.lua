-- End-to-end driver for tests/test_neovim_e2e.py: a real Neovim, the real plugin and the real
-- `zl serve`. Run as `nvim --headless -u NONE -i NONE -n --cmd 'set rtp+=clients/neovim'
-- -c 'luafile clients/neovim/tests/e2e.lua'` in the workspace folder. Inputs come from the
-- environment (ZL_E2E_*); everything observed is written as JSON to $ZL_E2E_OUT, which pytest
-- asserts on. The driver always quits, writing {"error": ...} on failure.
local out_path = assert(os.getenv("ZL_E2E_OUT"), "ZL_E2E_OUT not set")
local ws = assert(os.getenv("ZL_E2E_WS"), "ZL_E2E_WS not set")
local step_ms = tonumber(os.getenv("ZL_E2E_STEP_MS") or "30000")

local R = { steps = {}, messages = {} }
local t0 = vim.uv.hrtime()
local function elapsed_ms()
  return math.floor((vim.uv.hrtime() - t0) / 1e6)
end
local function step(name)
  table.insert(R.steps, { name = name, at_ms = elapsed_ms() })
end

local function write_out()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(R))
  f:close()
end

-- Keep what the plugin tells the user: the test asserts there were no errors.
vim.notify = function(msg, level)
  table.insert(R.messages, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

local function wait_for(what, cond, ms)
  local ok = vim.wait(ms or step_ms, cond, 50)
  if not ok then
    error(("timed out after %d ms waiting for %s"):format(ms or step_ms, what), 0)
  end
end

-- Call an async plugin API that takes an on_done callback, and wait for it.
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

-- Repeat `attempt` (which may itself wait) until it returns true, pausing between tries.
local function poll(what, attempt, ms)
  local deadline = elapsed_ms() + (ms or step_ms)
  while not attempt() do
    if elapsed_ms() > deadline then
      error(("timed out after %d ms waiting for %s"):format(ms or step_ms, what), 0)
    end
    vim.wait(200)
  end
end

local function qf_items()
  local items = {}
  for _, it in ipairs(vim.fn.getqflist()) do
    table.insert(items, {
      filename = vim.fn.fnamemodify(vim.fn.bufname(it.bufnr), ":p"),
      lnum = it.lnum,
      end_lnum = it.end_lnum,
      text = it.text,
    })
  end
  return items
end

local function main()
  -- -u NONE skips plugins and filetype detection: load both explicitly.
  vim.cmd("filetype on")
  vim.cmd("runtime! plugin/zero_latency.lua")
  R.nvim_version = tostring(vim.version())
  R.has_commands = vim.fn.exists(":ZlSearch") == 2 and vim.fn.exists(":ZlIndex") == 2
    and vim.fn.exists(":ZlStatus") == 2

  local zl = require("zero_latency")
  local client_mod = require("zero_latency.client")
  -- Exactly as clients/neovim/README.md configures it (every option there is commented out):
  -- `zl` comes from PATH, the model and store from the server's config file, the picker is
  -- "auto" (the quickfix list here: no Telescope, fzf-lua or replaced vim.ui.select).
  require("zero_latency").setup({
    -- cmd = { "zl", "serve" },
    -- init_options = { storePath = "~/.cache/zero-latency" },
    -- picker = "auto",  -- "telescope" | "fzf_lua" | "select" | "quickfix"
  })
  R.loaded_pickers_after_setup = vim.tbl_filter(function(name)
    return package.loaded[name] ~= nil
  end, { "zero_latency.pickers.telescope", "zero_latency.pickers.fzf_lua",
    "zero_latency.pickers.select", "zero_latency.pickers.quickfix" })

  -- Default filetypes against what the server indexes: the suffixes come from chunking.py.
  R.filetypes = zl.config.filetypes
  R.filetype_of_suffix = {}
  for _, suffix in ipairs(vim.json.decode(os.getenv("ZL_E2E_SUFFIXES") or "[]")) do
    -- Some detections look at the text (.txt: help file or not); vim.NIL: Neovim knows no
    -- filetype for the suffix, so there is nothing to attach on.
    R.filetype_of_suffix[suffix] = vim.filetype.match({ filename = "x" .. suffix,
      contents = { "Plain words." } }) or vim.NIL
  end

  -- What a statusline showing require("zero_latency").statusline() shows at each progress event
  -- (this autocmd is created after the plugin's, so it sees the updated state).
  R.statusline_samples = {}
  vim.api.nvim_create_autocmd("LspProgress", {
    callback = function(args)
      local value = (args.data.params or {}).value or {}
      table.insert(R.statusline_samples, { kind = value.kind, percentage = value.percentage or vim.NIL,
        text = zl.statusline({ raw = true }), escaped = zl.statusline() })
    end,
  })

  -- 1. Opening a Markdown file starts the server for the workspace (root: the .git folder).
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/keys.md"))
  R.filetype = vim.bo.filetype
  wait_for("the client to attach and initialize", function()
    local c = vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 })[1]
    return c ~= nil and c.initialized == true
  end)
  local c = vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 })[1]
  R.root_dir = c.root_dir
  R.server_docs_capability = c.server_capabilities.experimental
    and c.server_capabilities.experimental.docs or vim.NIL
  step("attached")

  -- A second document under the same root reuses the client.
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/deploy.md"))
  wait_for("deploy.md to attach", function()
    return #vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 }) == 1
  end)
  R.client_count = #vim.lsp.get_clients({ name = "zero_latency" })

  -- :checkhealth runs against the attached client (docs/status) and the CLI (--version).
  vim.cmd("checkhealth zero_latency")
  R.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd("tabclose")
  step("health")

  -- 2. Index (the same code path as :ZlIndex), then status until idle.
  local ierr, ires = await("docs/index", function(done)
    zl.index(false, done)
  end)
  R.index = { err = ierr or vim.NIL, result = ires or vim.NIL }
  step("indexed")
  local status
  poll("docs/status to report idle", function()
    local err, result = await("docs/status", function(done)
      client_mod.request(c, "docs/status", vim.empty_dict(), done)
    end)
    status = err and { error = err } or result
    return (status.state == "idle" or status.state == "ready") and (status.pendingFiles or 0) == 0
  end)
  R.status = status
  local _, st = await(":ZlStatus", function(done)
    zl.status(done)
  end)
  R.status_line = zl.format_status(st, c)
  step("idle")

  -- :checkhealth once indexed: the workspace's store (where, files, chunks) and the model in use.
  vim.cmd("checkhealth zero_latency")
  R.health_indexed = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd("tabclose")

  -- 3. :ZlSearch with the quickfix picker.
  local query = os.getenv("ZL_E2E_QUERY")
  vim.fn.setqflist({}, " ", { title = "before" })
  vim.cmd("ZlSearch " .. query)
  wait_for(":ZlSearch to fill the quickfix list", function()
    return vim.fn.getqflist({ title = 1 }).title == "Zero-Latency: " .. query
  end)
  R.search_qf = qf_items()
  -- The same query's hits as the server sent them (matchRange, range), to check where each
  -- quickfix item points.
  local _, raw = await("docs/search (raw)", function(done)
    client_mod.request(c, "docs/search", { query = query, limit = zl.config.search.limit,
      mode = zl.config.search.mode }, done)
  end)
  R.search_hits = raw.hits
  local qf_win = vim.fn.getqflist({ winid = 1 }).winid
  R.qf_window_open = qf_win ~= 0
  step("searched")

  -- Open an item from the quickfix window as a user does: <CR> on its line (the second
  -- item when there is one, so it is not the first-item default of :cc).
  local pick = math.min(2, #R.search_qf)
  vim.api.nvim_set_current_win(qf_win)
  vim.api.nvim_win_set_cursor(qf_win, { pick, 0 })
  vim.cmd([[execute "normal \<CR>"]])
  R.qf_open = {
    index = pick,
    from_qf_window = vim.api.nvim_get_current_win() ~= qf_win,
    buftype = vim.bo.buftype,
    file = vim.api.nvim_buf_get_name(0),
    cursor_line = vim.api.nvim_win_get_cursor(0)[1],
  }
  vim.cmd("cclose")
  step("opened from quickfix")

  -- :ZlSearch without a query asks with vim.ui.input.
  vim.fn.setqflist({}, " ", { title = "before" })
  vim.ui.input = function(opts, on_confirm)
    R.input_prompt = opts.prompt
    on_confirm(query)
  end
  vim.cmd("ZlSearch")
  wait_for(":ZlSearch (prompted) to fill the quickfix list", function()
    return vim.fn.getqflist({ title = 1 }).title == "Zero-Latency: " .. query
  end)
  R.input_qf_count = #vim.fn.getqflist()
  vim.cmd("cclose")

  -- 4. The vim.ui.select path: "auto" picks it once a UI plugin replaced vim.ui.select.
  local captured = {}
  vim.ui.select = function(items, opts, on_choice)
    captured.prompt = opts.prompt
    captured.kind = opts.kind
    captured.formatted = {}
    for _, item in ipairs(items) do
      table.insert(captured.formatted, opts.format_item(item))
    end
    captured.count = #items
    on_choice(items[1])
  end
  local serr, _, picker = await("select search", function(done)
    zl.search(query, { picker = "auto", on_done = done })
  end)
  R.select = {
    err = serr or vim.NIL,
    picker = picker,
    captured = vim.deepcopy(captured), -- the stub writes into `captured` again later
    opened = vim.api.nvim_buf_get_name(0),
    cursor_line = vim.api.nvim_win_get_cursor(0)[1],
  }
  step("select")

  -- 5. Edit a buffer without saving: the server sees it through didChange.
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/deploy.md"))
  local buf = vim.api.nvim_get_current_buf()
  local first = tonumber(os.getenv("ZL_E2E_EDIT_FIRST")) -- 0-based, end-exclusive
  local last = tonumber(os.getenv("ZL_E2E_EDIT_LAST"))
  local new_text = os.getenv("ZL_E2E_EDIT_TEXT")
  vim.api.nvim_buf_set_lines(buf, first, last, false, { new_text })
  R.modified = vim.bo[buf].modified
  local new_query = os.getenv("ZL_E2E_EDIT_QUERY")
  local attempts, found = 0, nil
  local edit_start = elapsed_ms()
  poll("the edited text to be searchable", function()
    attempts = attempts + 1
    local err, result = await("search after edit", function(done)
      zl.search(new_query, { picker = "quickfix", on_done = done })
    end)
    if err then
      error("docs/search after edit failed: " .. vim.inspect(err), 0)
    end
    if attempts == 1 then -- what a search right after the edit returns (server debounce)
      R.first_after_edit = vim.tbl_map(function(h)
        return { path = h.path or vim.uri_to_fname(h.uri), start = h.range.start.line,
          stop = h.range["end"].line }
      end, result.hits)
    end
    local top = result and result.hits[1]
    if top and vim.uri_to_fname(top.uri) == vim.api.nvim_buf_get_name(buf) then
      found = result
      return true
    end
    return false
  end)
  R.edit = {
    attempts = attempts,
    ms = elapsed_ms() - edit_start,
    qf = qf_items(),
    top_hit = found.hits[1],
    still_modified = vim.bo[buf].modified,
  }
  step("edited")

  -- 6. :ZlRelated on the key-rotation paragraph of keys.md: hits from the other files only,
  -- into the quickfix list; :cc lands on the first hit's matchRange (else range) line.
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/keys.md"))
  vim.api.nvim_win_set_cursor(0, { tonumber(os.getenv("ZL_E2E_RELATED_LINE")), 0 })
  vim.fn.setqflist({}, " ", { title = "before" })
  local rerr, rres, rpicker = await(":ZlRelated", function(done)
    zl.related({ picker = "quickfix", on_done = done })
  end)
  R.related = { err = rerr or vim.NIL, picker = rpicker or vim.NIL,
    hits = rres and rres.hits or vim.NIL, anchor = rres and rres.anchor or vim.NIL,
    qf_title = vim.fn.getqflist({ title = 1 }).title, qf = qf_items() }
  if #R.related.qf > 0 then
    vim.cmd("cc 1")
    R.related.jump = { file = vim.api.nvim_buf_get_name(0), line = vim.api.nvim_win_get_cursor(0)[1] }
  end
  vim.cmd("cclose")
  step("related")

  -- 7. Every picker lands on matchRange when a hit has one (whatever this server sends): the
  -- search hits with a matchRange set to their chunk's last line.
  local with_match = vim.deepcopy(R.search_hits)
  for _, hit in ipairs(with_match) do
    hit.matchRange = { start = { line = hit.range["end"].line, character = 0 },
      ["end"] = { line = hit.range["end"].line, character = 0 } }
  end
  local search_mod = require("zero_latency.search")
  R.match_jumps = { expected = with_match[1].matchRange.start.line + 1 }
  search_mod.show_hits({ hits = with_match }, "matchRange", { picker = "quickfix" }, "none")
  vim.cmd("cc 1")
  R.match_jumps.quickfix = vim.api.nvim_win_get_cursor(0)[1]
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/docs/deploy.md"))
  search_mod.show_hits({ hits = with_match }, "matchRange", { picker = "select" }, "none")
  R.match_jumps.select = vim.api.nvim_win_get_cursor(0)[1]
  R.match_jumps.select_file = vim.api.nvim_buf_get_name(0)
  R.match_jumps.expected_file = vim.uri_to_fname(with_match[1].uri)
  R.loaded_pickers_at_end = vim.tbl_filter(function(name)
    return package.loaded[name] ~= nil
  end, { "zero_latency.pickers.telescope", "zero_latency.pickers.fzf_lua",
    "zero_latency.pickers.select", "zero_latency.pickers.quickfix" })

  -- 8. A Python file attaches by default (the server indexes .py).
  vim.cmd.edit(vim.fn.fnameescape(ws .. "/notes/tool.py"))
  R.python_filetype = vim.bo.filetype
  R.python_attached = vim.wait(step_ms, function()
    return #vim.lsp.get_clients({ name = "zero_latency", bufnr = 0 }) == 1
  end, 50)

  -- 9. Stop the server cleanly so its store is flushed before Neovim exits.
  for _, cl in ipairs(vim.lsp.get_clients({ name = "zero_latency" })) do
    client_mod._call(cl, "stop")
  end
  R.stopped = vim.wait(10000, function()
    return #vim.lsp.get_clients({ name = "zero_latency" }) == 0
  end, 50)
  step("stopped")
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  R.error = tostring(err)
end
R.total_ms = elapsed_ms()
write_out()
vim.cmd("qa!")
