-- Which picker shows hits, and showing them. Each picker is its own module, required only when
-- it is used (a user of the quickfix list never loads the Telescope glue).
local M = {}

M.NAMES = { "telescope", "fzf_lua", "select", "quickfix" }

-- The built-in vim.ui.select is a numbered inputlist: fine for a few choices, poor for 20 hits.
-- "auto" uses it only when a UI plugin (dressing, snacks, mini.pick...) has replaced it.
local function select_is_builtin()
  local info = debug.getinfo(vim.ui.select, "S")
  return info and info.source and info.source:match("vim/ui%.lua$") ~= nil
end

---"auto" → the first available of Telescope, fzf-lua, a replaced vim.ui.select, quickfix.
---@param picker string
---@return string
function M.resolve(picker)
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

---Show items with `picker` ("auto" resolved); a picker that fails falls back to quickfix.
---@param items table[] hits.to_items()
---@param title string
---@param opts table { picker?: string, root?: string, open_quickfix?: boolean }
---@return string picker used
function M.show(items, title, opts)
  local picker = M.resolve(opts.picker or "auto")
  local ok, err = pcall(function()
    require("zero_latency.pickers." .. picker).show(items, title, opts)
  end)
  if not ok then
    vim.notify(("Zero-Latency: picker %s failed (%s); using the quickfix list"):format(picker, err),
      vim.log.levels.WARN)
    require("zero_latency.pickers.quickfix").show(items, title, opts)
    return "quickfix"
  end
  return picker
end

return M
