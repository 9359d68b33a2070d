-- User commands of Zero-Latency. Modules load on first use; nothing starts until setup()
-- (auto_attach) or a command asks for the server.
if vim.g.loaded_zero_latency then
  return
end
vim.g.loaded_zero_latency = true

if vim.fn.has("nvim-0.10") ~= 1 then
  vim.api.nvim_echo({ { "zero_latency needs Neovim 0.10 or later", "WarningMsg" } }, true, {})
  return
end

vim.api.nvim_create_user_command("ZlSearch", function(args)
  require("zero_latency").search(args.args)
end, { nargs = "*", desc = "Zero-Latency: semantic search of the workspace's documents" })

vim.api.nvim_create_user_command("ZlIndex", function(args)
  require("zero_latency").index(args.bang)
end, { bang = true, nargs = 0, desc = "Zero-Latency: (re)index the workspace (! re-embeds everything)" })

vim.api.nvim_create_user_command("ZlStatus", function()
  require("zero_latency").status()
end, { nargs = 0, desc = "Zero-Latency: index, model and store status" })

vim.api.nvim_create_user_command("ZlRelated", function()
  require("zero_latency").related()
end, { nargs = 0, desc = "Zero-Latency: passages in other files related to the cursor's paragraph" })
