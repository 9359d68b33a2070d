-- The server's `$/progress` (indexing) as one line with a percentage: a statusline component
-- (require("zero_latency").statusline()) and, when config.progress is on, a short echo.
local M = {}

-- Work in progress by "client_id:token": { title, message, percentage }.
M.active = {}
-- The echo is throttled: a busy index run reports up to 10 times a second.
local ECHO_EVERY_MS = 1000
local last_echo = 0
-- A message the user must read (why a search found nothing) holds the echo area this long.
local HOLD_MS = 4000
local hold_until = 0

---Keep progress echoes out of the echo area for a while: a message just shown stays readable.
function M.hold()
  hold_until = vim.uv.now() + HOLD_MS
end

---The phase a report belongs to: an index run first reads every file (the keyword pass),
---then embeds the chunks (the backfill); each has its own 0–100 percentage.
---@param work table { message? }
---@return string
function M.phase(work)
  local message = work.message or ""
  if message:find("chunks? embedded") then
    return "embedding"
  end
  if message:match("^[%d,]+/[%d,]+") then
    return "reading files"
  end
  return "indexing"
end

---"Zero-Latency: embedding 4% 412/26,100 chunks embedded · 57/s · ~7 min left": the phase
---named, its own percentage, the server's message.
---@param work table { title?, message?, percentage? }
---@return string
function M.format(work)
  local title = (work.title or "Zero-Latency"):gsub(":%s*indexing$", "")
  local parts = { title .. ": " .. M.phase(work) }
  if type(work.percentage) == "number" then
    table.insert(parts, ("%d%%"):format(work.percentage))
  end
  if work.message and work.message ~= "" then
    table.insert(parts, work.message)
  end
  return table.concat(parts, " ")
end

---The running work to show for buffer `bufnr`'s client (any Zero-Latency client if none is
---attached): the one reported last.
---@param bufnr? integer
---@return table?
function M.current(bufnr)
  local ids = {}
  local attached = vim.lsp.get_clients({ name = "zero_latency", bufnr = bufnr or 0 })
  for _, c in ipairs(#attached > 0 and attached or vim.lsp.get_clients({ name = "zero_latency" })) do
    ids[c.id] = true
  end
  local best
  for _, work in pairs(M.active) do
    if ids[work.client_id] and (not best or work.updated > best.updated) then
      best = work
    end
  end
  return best
end

---Statusline component: the percentage and message of indexing in progress, else the state
---the server last pushed when it is not ready (e.g. "Zero-Latency: loading"), else "".
---`%` is escaped for 'statusline' (%%); pass { raw = true } for the plain text.
---@param opts? { raw?: boolean, bufnr?: integer }
---@return string
function M.statusline(opts)
  opts = opts or {}
  local work = M.current(opts.bufnr)
  local text = ""
  if work then
    text = M.format(work)
  else
    local client = require("zero_latency.client")
    for _, c in ipairs(vim.lsp.get_clients({ name = "zero_latency", bufnr = opts.bufnr or 0 })) do
      local status = client.last_status[c.id]
      if status and status.state == "embedding" and (status.keywordChunks or 0) > 0 then
        -- No run reports progress (a paused or resumed backfill): its share, named.
        text = ("Zero-Latency: embedding %d%%"):format(
          math.floor((status.embeddedChunks or 0) * 100 / status.keywordChunks))
      elseif status and status.state and status.state ~= "ready" and status.state ~= "idle" then
        text = "Zero-Latency: " .. status.state
      end
    end
  end
  if opts.raw then
    return text
  end
  return (text:gsub("%%", "%%%%"))
end

---LspProgress handler (pattern begin/report/end) for Zero-Latency clients.
---@param client_id integer
---@param params table { token, value = { kind, title?, message?, percentage? } }
---@param echo boolean echo the line (config.progress)
function M.on_progress(client_id, params, echo)
  local value = params.value or {}
  local key = client_id .. ":" .. tostring(params.token)
  if value.kind == "begin" then
    M.active[key] = { client_id = client_id, title = value.title, message = value.message,
      percentage = value.percentage, updated = vim.uv.hrtime() }
  elseif value.kind == "report" then
    local work = M.active[key] or { client_id = client_id }
    M.active[key] = work
    work.message = value.message or work.message
    work.percentage = value.percentage or work.percentage
    work.updated = vim.uv.hrtime()
  elseif value.kind == "end" then
    local work = M.active[key] or {}
    M.active[key] = nil
    -- The run has ended: a busy state pushed before its end is stale (zl/status is throttled,
    -- so the next push may come half a second later) and must not linger in the statusline.
    local status = require("zero_latency.client").last_status[client_id]
    local busy = { loading = true, loadingModel = true, indexing = true }
    if status and busy[status.state] then
      status.state = nil
    end
    vim.cmd("redrawstatus!")
    if echo then
      local line = ("%s: %s"):format(work.title or "Zero-Latency", value.message or "done")
      vim.api.nvim_echo({ { M.fit(line) } }, false, {})
    end
    return
  end
  vim.cmd("redrawstatus!")
  local now = vim.uv.now()
  if echo and now - last_echo >= ECHO_EVERY_MS and now >= hold_until then
    last_echo = now
    vim.api.nvim_echo({ { M.fit(M.format(M.active[key])) } }, false, {})
  end
end

---Cut `line` to the echo area, so an echo never raises a hit-enter prompt.
---@param line string
---@return string
function M.fit(line)
  local room = math.max(vim.v.echospace - 1, 20)
  if vim.fn.strdisplaywidth(line) > room then
    return vim.fn.strcharpart(line, 0, room - 1) .. "…"
  end
  return line
end

return M
