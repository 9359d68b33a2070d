-- Hits in a Telescope picker, with the quickfix previewer (it shows lnum: the hit's matchRange).
local M = {}

---@param items table[] hits.to_items()
---@param title string
---@param opts table { root?: string }
function M.show(items, title, opts)
  local hits = require("zero_latency.hits")
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
        local display = hits.display(item, opts.root)
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
        hits.open(entry and entry.value)
      end)
      return true
    end,
  }):find()
end

return M
