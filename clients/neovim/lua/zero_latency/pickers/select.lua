-- Hits through vim.ui.select (dressing, snacks, mini.pick... when they replace it).
local M = {}

---@param items table[] hits.to_items()
---@param title string
---@param opts table { root?: string }
function M.show(items, title, opts)
  local hits = require("zero_latency.hits")
  vim.ui.select(items, {
    prompt = title,
    kind = "zero_latency",
    format_item = function(item)
      return hits.display(item, opts.root)
    end,
  }, function(item)
    hits.open(item)
  end)
end

return M
