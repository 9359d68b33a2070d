-- Setup for tests/test_neovim_startup.py's terminal part: Neovim with its real TUI (in a pty,
-- 80x24) opens a document, which starts the server; the server warns that the default model
-- fell back to the bundled one. Nothing here waits: tests/probe.lua watches this Neovim.
vim.cmd("filetype on")
vim.cmd("runtime! plugin/zero_latency.lua")
require("zero_latency").setup({
  cmd = vim.json.decode((assert(os.getenv("ZL_E2E_CMD"), "ZL_E2E_CMD not set"))),
  init_options = vim.json.decode(os.getenv("ZL_E2E_INIT") or "{}"),
})
vim.cmd.edit(vim.fn.fnameescape(assert(os.getenv("ZL_E2E_WS")) .. "/docs/keys.md"))
