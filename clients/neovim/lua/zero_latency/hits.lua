-- Hits (docs/search and docs/related) → quickfix-shaped items, and opening one. Every picker
-- works on these items, so "where a hit lands" is decided here once: the best-matching
-- sentence (`matchRange`) when the server sends it, else the chunk's first line (`range`).
local M = {}

local function one_line(s, max)
  s = (s or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if max and vim.fn.strchars(s) > max then
    s = vim.fn.strcharpart(s, 0, max - 1) .. "…"
  end
  return s
end
M.one_line = one_line

---"Heading > Sub: snippet" (heading path omitted when the chunk has none).
---@param hit table
---@return string
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

---"strong" | "good" | "weak" for a hit's 0–1 relevance (protocol/spec.md "Scores": ≥ 0.6, ≥ 0.35,
---else), nil from a server whose `score` is still the raw one (no `rawScore` beside it).
---@param hit table
---@return string?
function M.label(hit)
  if type(hit.rawScore) ~= "number" or type(hit.score) ~= "number" then
    return nil
  end
  return hit.score >= 0.6 and "strong" or hit.score >= 0.35 and "good" or "weak"
end

---The range a hit points at: its best-matching sentence, else the whole chunk.
---@param hit table
---@return table range LSP Range (0-based lines)
function M.target_range(hit)
  local range = type(hit.matchRange) == "table" and hit.matchRange or hit.range
  if type(range) ~= "table" or type(range.start) ~= "table" then
    return { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 0 } }
  end
  return { start = range.start, ["end"] = range["end"] or range.start }
end

---The last line a range covers, 0-based: an `end` at character 0 of a later line is the start of
---the line after the range (protocol/spec.md: matchRange ends "at the start of the line after it").
---@param range table LSP Range
---@return integer
function M.last_line(range)
  local stop = range["end"] or range.start
  if stop.line > range.start.line and (stop.character or 0) == 0 then
    return stop.line - 1
  end
  return stop.line
end

---One quickfix item per hit, in the server's order. `lnum`..`end_lnum` is where the hit
---points (matchRange, else range), 1-based as quickfix wants; the chunk's own lines stay in
---user_data.
---@param hits table[]
---@return table[]
function M.to_items(hits)
  local items = {}
  for _, hit in ipairs(hits or {}) do
    local target = M.target_range(hit)
    local chunk = hit.range or target
    local label = M.label(hit)
    table.insert(items, {
      filename = vim.uri_to_fname(hit.uri),
      lnum = target.start.line + 1,
      end_lnum = M.last_line(target) + 1,
      col = 1,
      -- "[unsaved]": the text is an editor's unsaved buffer, not the file on disk.
      text = (label and ("[%s] "):format(label) or "") .. (hit.source == "buffer" and "[unsaved] " or "")
        .. M.hit_text(hit),
      user_data = {
        score = hit.score,
        label = label,
        source = hit.source,
        uri = hit.uri,
        chunk_lnum = chunk.start.line + 1,
        chunk_end_lnum = M.last_line(chunk) + 1,
      },
    })
  end
  return items
end

---`filename` relative to the workspace root (or to the current directory / home).
---@param filename string
---@param root? string
---@return string
function M.relpath(filename, root)
  if root then
    local prefix = root:gsub("/$", "") .. "/"
    if filename:sub(1, #prefix) == prefix then
      return filename:sub(#prefix + 1)
    end
  end
  return vim.fn.fnamemodify(filename, ":~:.")
end

---"docs/keys.md:7  Heading: snippet": the line every list-style picker shows.
---@param item table
---@param root? string
---@return string
function M.display(item, root)
  return ("%s:%d  %s"):format(M.relpath(item.filename, root), item.lnum, item.text)
end

---Open an item's file with the cursor on the line the hit points at.
---@param item? table
function M.open(item)
  if not item then
    return
  end
  vim.cmd.edit(vim.fn.fnameescape(item.filename))
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_win_set_cursor(0, { math.min(item.lnum, last), 0 })
  vim.cmd("normal! zz")
end

return M
