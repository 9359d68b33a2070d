-- Hits into the quickfix list (<CR> / :cc jump to each item's lnum: the hit's matchRange).
local M = {}

---@param items table[] hits.to_items()
---@param title string
---@param opts table { open_quickfix?: boolean }
function M.show(items, title, opts)
  vim.fn.setqflist({}, " ", { title = title, items = items })
  if opts.open_quickfix then
    vim.cmd("botright copen")
  end
end

return M
