-- docs/search results → quickfix items and picker entries. Ranking is the server's; the order
-- of hits is kept everywhere.
local M = {}

local function one_line(s, max)
  s = (s or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if max and vim.fn.strchars(s) > max then
    s = vim.fn.strcharpart(s, 0, max - 1) .. "…"
  end
  return s
end

---"Heading > Sub: snippet" (heading path omitted when the chunk has none).
---@param hit table
function M.hit_text(hit)
  local path = hit.headingPath or {}
  local heading = table.concat(path, " > ")
  local snippet = one_line(hit.snippet)
  if #path > 0 then
    -- A chunk often starts with its own heading line ("## Key rotation ..."): shown already.
    snippet = snippet:gsub("^#+ " .. vim.pesc(path[#path]) .. " ?", "", 1)
  end
  snippet = one_line(snippet, 200)
  if heading ~= "" then
    return heading .. ": " .. snippet
  end
  return snippet
end

---One quickfix item per hit. `range` is LSP's (0-based lines); quickfix is 1-based.
---@param hits table[]
---@return table[]
function M.to_items(hits)
  local items = {}
  for _, hit in ipairs(hits or {}) do
    local start = hit.range and hit.range.start or { line = 0, character = 0 }
    local stop = hit.range and hit.range["end"] or start
    table.insert(items, {
      filename = vim.uri_to_fname(hit.uri),
      lnum = start.line + 1,
      end_lnum = stop.line + 1,
      col = 1,
      text = M.hit_text(hit),
      user_data = { score = hit.score, uri = hit.uri },
    })
  end
  return items
end

local function relpath(filename, root)
  if root then
    local prefix = root:gsub("/$", "") .. "/"
    if filename:sub(1, #prefix) == prefix then
      return filename:sub(#prefix + 1)
    end
  end
  return vim.fn.fnamemodify(filename, ":~:.")
end

local function open_item(item)
  if not item then
    return
  end
  vim.cmd.edit(vim.fn.fnameescape(item.filename))
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_win_set_cursor(0, { math.min(item.lnum, last), 0 })
  vim.cmd("normal! zz")
end

-- The built-in vim.ui.select is a numbered inputlist: fine for a few choices, poor for 20 hits.
-- "auto" uses it only when a UI plugin (dressing, snacks, mini.pick...) has replaced it.
local function select_is_builtin()
  local info = debug.getinfo(vim.ui.select, "S")
  return info and info.source and info.source:match("vim/ui%.lua$") ~= nil
end

---@param picker string
---@return string
function M.resolve_picker(picker)
  if picker ~= "auto" then
    return picker
  end
  if pcall(require, "telescope") then
    return "telescope"
  end
  if pcall(require, "fzf-lua") then
    return "fzf_lua"
  end
  if not select_is_builtin() then
    return "select"
  end
  return "quickfix"
end

local show = {}

function show.quickfix(items, title, opts)
  vim.fn.setqflist({}, " ", { title = title, items = items })
  if opts.open_quickfix then
    vim.cmd("botright copen")
  end
end

function show.select(items, title, opts)
  vim.ui.select(items, {
    prompt = title,
    kind = "zero_latency",
    format_item = function(item)
      return ("%s:%d  %s"):format(relpath(item.filename, opts.root), item.lnum, item.text)
    end,
  }, function(item)
    open_item(item)
  end)
end

function show.telescope(items, title, opts)
  local pickers = require("telescope.pickers")
  local finders = require("telescope.finders")
  local conf = require("telescope.config").values
  local actions = require("telescope.actions")
  local state = require("telescope.actions.state")
  pickers.new({}, {
    prompt_title = title,
    finder = finders.new_table({
      results = items,
      entry_maker = function(item)
        local display = ("%s:%d  %s"):format(relpath(item.filename, opts.root), item.lnum, item.text)
        return {
          value = item,
          display = display,
          ordinal = display,
          filename = item.filename,
          lnum = item.lnum,
          col = 1,
        }
      end,
    }),
    -- Hits are already ranked by the server: keep that order while the prompt is empty.
    sorter = conf.generic_sorter({}),
    previewer = conf.qflist_previewer({}),
    attach_mappings = function(bufnr)
      actions.select_default:replace(function()
        local entry = state.get_selected_entry()
        actions.close(bufnr)
        open_item(entry and entry.value)
      end)
      return true
    end,
  }):find()
end

function show.fzf_lua(items, title, opts)
  local fzf = require("fzf-lua")
  local lines = {}
  for _, item in ipairs(items) do
    -- "file:line:col: text" is the shape fzf-lua's file actions and previewer parse.
    table.insert(lines, ("%s:%d:1: %s"):format(item.filename, item.lnum, item.text))
  end
  fzf.fzf_exec(lines, {
    prompt = title .. "> ",
    previewer = "builtin",
    actions = fzf.defaults and fzf.defaults.actions and fzf.defaults.actions.files or nil,
    fzf_opts = { ["--no-sort"] = true },
  })
end

---Show search results with the chosen picker.
---@param result table docs/search result
---@param query string
---@param opts table { picker, root, open_quickfix }
---@return string picker used
function M.show(result, query, opts)
  local items = M.to_items(result.hits)
  local title = ("Zero-Latency: %s"):format(query)
  local picker = M.resolve_picker(opts.picker or "auto")
  if #items == 0 then
    -- Nothing to pick from: say so, and still empty the quickfix list for the quickfix path.
    if picker == "quickfix" then
      vim.fn.setqflist({}, " ", { title = title, items = {} })
    end
    local why = result.indexState == "empty" and " (no documents are indexed in this workspace)"
      or result.indexState == "indexing" and " (still indexing: try again shortly)" or ""
    vim.notify(("Zero-Latency: no results for %q%s"):format(query, why), vim.log.levels.INFO)
    return picker
  end
  if result.indexState == "indexing" then
    vim.notify("Zero-Latency: still indexing, results may be partial", vim.log.levels.INFO)
  end
  local ok, err = pcall(show[picker], items, title, opts)
  if not ok then
    vim.notify(("Zero-Latency: picker %s failed (%s); using the quickfix list"):format(picker, err),
      vim.log.levels.WARN)
    show.quickfix(items, title, opts)
    return "quickfix"
  end
  return picker
end

---:ZlSearch. `opts` may override picker, limit, mode, include, exclude; `on_done(err, result,
---picker)` is called after the results were shown (used by tests and scripts).
---@param query? string
---@param opts? table
function M.run(query, opts)
  opts = opts or {}
  if query == nil or vim.trim(query) == "" then
    vim.ui.input({ prompt = "Zero-Latency search: " }, function(input)
      if input and vim.trim(input) ~= "" then
        M.run(input, opts)
      end
    end)
    return
  end
  local cfg = require("zero_latency").config
  local client = require("zero_latency.client")
  local search = vim.tbl_extend("force", cfg.search or {}, opts)
  local params = {
    query = query,
    limit = search.limit,
    mode = search.mode,
    include = search.include,
    exclude = search.exclude,
  }
  client.with_client(nil, function(c)
    client.request(c, "docs/search", params, function(err, result)
      -- A server that just started answers before its first index is built: wait for that
      -- (docs/index returns once the index reflects the disk) and ask once more.
      if not err and result and #(result.hits or {}) == 0 and result.indexState ~= "ready"
        and not opts._retried then
        local msg = "Zero-Latency: the index is still being built; searching when it is ready..."
        vim.api.nvim_echo({ { msg } }, false, {})
        client.request(c, "docs/index", vim.empty_dict(), function(ierr)
          if ierr then
            client.notify_error("docs/index", ierr)
          end
          M.run(query, vim.tbl_extend("force", opts, { _retried = true }))
        end)
        return
      end
      local picker
      if err then
        client.notify_error("docs/search", err)
      else
        picker = M.show(result, query, {
          picker = opts.picker or cfg.picker,
          root = c.root_dir,
          open_quickfix = cfg.open_quickfix,
        })
      end
      if opts.on_done then
        opts.on_done(err, result, picker)
      end
    end)
  end)
end

return M
