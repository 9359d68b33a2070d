-- :ZlSearch: the docs/search request and showing its hits (also docs/related's, through
-- show_hits). Ranking is the server's; the order of hits is kept everywhere.
local M = {}

local hits = require("zero_latency.hits")

-- Kept for scripts that used them from here; the definitions live in hits.lua.
M.hit_text = hits.hit_text
M.to_items = hits.to_items

---@param picker string
---@return string
function M.resolve_picker(picker)
  return require("zero_latency.pickers").resolve(picker)
end

---Show search results with the chosen picker.
---@param result table docs/search result
---@param query string
---@param opts table { picker, root, open_quickfix }
---@return string picker used
function M.show(result, query, opts)
  return M.show_hits(result, ("Zero-Latency: %s"):format(query), opts,
    ("nothing for %q"):format(query))
end

---Show any hit list (docs/search or docs/related) with the chosen picker.
---@param result table { hits, indexState?, notice? }
---@param title string
---@param opts table { picker, root, open_quickfix }
---@param nothing string what to say when there are no hits ("no results for ...")
---@return string picker used
function M.show_hits(result, title, opts, nothing)
  local pickers = require("zero_latency.pickers")
  local items = hits.to_items(result.hits)
  local picker = pickers.resolve(opts.picker or "auto")
  local progress = require("zero_latency.progress")
  if #items == 0 then
    -- Nothing to pick from: say so, and still empty the quickfix list for the quickfix path.
    if picker == "quickfix" then
      vim.fn.setqflist({}, " ", { title = title, items = {} })
    end
    progress.hold() -- the reason stays readable, not overwritten by the next progress echo
    -- One line that fits the echo area (no hit-enter prompt): the reason is what matters, the
    -- query goes first when the line is too long for both.
    local reason = M.empty_reason(result, opts.status)
    local line = ("Zero-Latency: %s: %s"):format(nothing, reason)
    if vim.fn.strdisplaywidth(line) > vim.v.echospace - 1 then
      line = "Zero-Latency: " .. reason
    end
    vim.notify(progress.fit(line), vim.log.levels.INFO)
    return picker
  end
  if result.notice and result.notice ~= "" then
    progress.hold()
    vim.notify(progress.fit("Zero-Latency: " .. result.notice), vim.log.levels.INFO)
  elseif result.indexState == "indexing" then
    vim.notify("Zero-Latency: still indexing, results may be partial", vim.log.levels.INFO)
  end
  return pickers.show(items, title, opts)
end

local function first_sentence(text)
  text = (text or ""):gsub("\n.*", "")
  return text:match("^(.-%.)%s") or text
end

---Why a search found nothing, from the server's fields: the relevance floor (belowFloor), a
---refused folder (status.refusedFolders), a store that failed (status.lastError), nothing
---indexed yet (indexState "empty"), a first index still going (coverage), or no match.
---@param result table docs/search result
---@param status? table the last zl/status (docs/status) of the client
---@return string
function M.empty_reason(result, status)
  local below = tonumber(result.belowFloor) or 0
  local coverage = result.coverage
  local partial = coverage and (coverage.keywordChunks or 0) > 0
    and math.floor(coverage.embeddedChunks * 100 / coverage.keywordChunks)
  if below > 0 then
    if partial then -- meaning covers part of the index: a better match may yet come
      return ("no good match yet (%d%% embedded, %d weaker left out)"):format(partial, below)
    end
    return ("no good match (%d weaker passage%s left out)"):format(below, below == 1 and "" or "s")
  end
  status = status or {}
  local refused = status.refusedFolders or {}
  if result.indexState == "empty" and #refused > 0 then
    return "index refused: " .. first_sentence(refused[1].reason)
  end
  if result.indexState == "empty" and status.state == "error" and status.lastError then
    return "store unavailable: " .. first_sentence(status.lastError)
  end
  if result.indexState == "empty" then
    local busy = status.state == "indexing" or status.state == "loading" or status.state == "loadingModel"
    return busy and "nothing indexed yet (the first index is running: try again shortly)"
      or "nothing indexed yet (no documents in this workspace)"
  end
  if result.indexState == "indexing" or coverage then
    if partial then
      -- Short enough for an 80-column TUI's echo area (68 with the ruler and showcmd).
      return ("no match yet (%d%% of %d chunks embedded)"):format(partial, coverage.keywordChunks)
    end
    return "no match in the part indexed so far: try again shortly"
  end
  return "no passage matches these words or their meaning"
end

---Whether client `c`'s index run has reached its embedding phase (the backfill): every file is
---keyword-searchable, so an empty answer is the answer for now. Waiting for docs/index would
---wait for the whole backfill (minutes, when it is held back), with nothing said meanwhile.
---@param c table vim.lsp.Client
---@return boolean
function M.keyword_ready(c)
  local progress = require("zero_latency.progress")
  for _, work in pairs(progress.active) do
    if work.client_id == c.id and progress.phase(work) == "embedding" then
      return true
    end
  end
  return false
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
      -- (docs/index returns once the index reflects the disk) and ask once more; not once the
      -- run embeds (every file is keyword-searchable then: the reason is shown at once).
      if not err and result and #(result.hits or {}) == 0 and result.indexState ~= "ready"
        and not opts._retried and not M.keyword_ready(c) then
        local msg = "Zero-Latency: the index is still being built; searching when it is ready..."
        require("zero_latency.progress").hold()
        vim.api.nvim_echo({ { require("zero_latency.progress").fit(msg) } }, false, {})
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
          status = client.last_status[c.id],
        })
      end
      if opts.on_done then
        opts.on_done(err, result, picker)
      end
    end)
  end)
end

return M
