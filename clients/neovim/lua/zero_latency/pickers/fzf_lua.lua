-- Hits in fzf-lua: "file:line:col: text" lines, the shape its file actions and previewer parse
-- (line = the hit's matchRange).
local M = {}

---@param items table[] hits.to_items()
---@param title string
---@param _opts table
function M.show(items, title, _opts)
  local fzf = require("fzf-lua")
  local lines = {}
  for _, item in ipairs(items) do
    table.insert(lines, ("%s:%d:1: %s"):format(item.filename, item.lnum, item.text))
  end
  fzf.fzf_exec(lines, {
    prompt = title .. "> ",
    previewer = "builtin",
    actions = fzf.defaults and fzf.defaults.actions and fzf.defaults.actions.files or nil,
    fzf_opts = { ["--no-sort"] = true },
  })
end

return M
