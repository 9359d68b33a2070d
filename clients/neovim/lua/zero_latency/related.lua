-- :ZlRelated: passages from other files most similar to the paragraph or section at the cursor
-- (docs/related, protocol/spec.md "Extensions"), shown in the same picker as :ZlSearch.
local M = {}

---The docs/related params for the cursor of window `win` (its buffer must be a file).
---@param win integer
---@param encoding string the client's offset encoding ("utf-16" for this server)
---@param limit? integer
---@return table? params, string? why not
function M.params(win, encoding, limit)
  local bufnr = vim.api.nvim_win_get_buf(win)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" then
    return nil, "Zero-Latency: :ZlRelated needs a file buffer (this one has no file)"
  end
  local position = vim.lsp.util.make_position_params(win, encoding).position
  return { uri = vim.uri_from_bufnr(bufnr), position = position, limit = limit }
end

---:ZlRelated. `opts`: picker, limit, and `on_done(err, result, picker)` called after the hits
---were shown (used by tests and scripts).
---@param opts? table
function M.run(opts)
  opts = opts or {}
  local cfg = require("zero_latency").config
  local client = require("zero_latency.client")
  local win = vim.api.nvim_get_current_win()
  local bufnr = vim.api.nvim_win_get_buf(win)
  local where = ("%s:%d"):format(vim.fn.fnamemodify(vim.api.nvim_buf_get_name(bufnr), ":t"),
    vim.api.nvim_win_get_cursor(win)[1])
  client.with_client(bufnr, function(c)
    local params, why = M.params(win, c.offset_encoding or "utf-16", opts.limit or cfg.related.limit)
    if not params then
      vim.notify(why, vim.log.levels.ERROR)
      if opts.on_done then
        opts.on_done({ message = why }, nil, nil)
      end
      return
    end
    client.request(c, "docs/related", params, function(err, result)
      local picker
      if err then
        client.notify_error("docs/related", err)
      else
        picker = require("zero_latency.search").show_hits(result, "Zero-Latency related: " .. where, {
          picker = opts.picker or cfg.picker,
          root = c.root_dir,
          open_quickfix = cfg.open_quickfix,
        }, "no related passages in other files for " .. where)
      end
      if opts.on_done then
        opts.on_done(err, result, picker)
      end
    end)
  end)
end

return M
