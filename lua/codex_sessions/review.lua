--- Learn mode's prompt review: the notetaker rewrote a prompt and the session waits for
--- the user (a `promptReview` request). A tab page of its own shows the original (left,
--- read-only) and the rewrite (right, editable) as a diff (:diffthis), the learnings it
--- drew on below; buffer-local keys send the rewrite (or the user's edit of it, also on
--- :write), the original, or nothing.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local H = {
  reviews = {}, -- "sessionId requestId" -> review { id, request, name, tab, from, bufs, rewrite, answering, seen }
}

local function key(id, request_id)
  return id .. " " .. request_id
end

local function valid_buf(buf)
  return buf and vim.api.nvim_buf_is_valid(buf)
end

local function text_lines(text)
  return vim.split((tostring(text or ""):gsub("\n$", "")), "\n", { plain = true })
end

local function label(session)
  return string.format("%s/%s", session.project and session.project.name or "?", session.name or "?")
end

--- Is `request` (a pending request of a session) a prompt review?
function M.is_review(request)
  return type(request) == "table" and request.kind == "promptReview"
end

--- The first prompt review `session` waits on, if any.
function M.pending_of(session)
  for _, r in ipairs(type(session) == "table" and type(session.pending) == "table" and session.pending or {}) do
    if M.is_review(r) then
      return r
    end
  end
end

--- The review a buffer belongs to.
local function review_of(buf)
  for _, r in pairs(H.reviews) do
    for _, b in ipairs(r.bufs) do
      if b == buf then
        return r
      end
    end
  end
end

--- The open review of session `id` (and request `request_id`, when given).
function M.find(id, request_id)
  for _, r in pairs(H.reviews) do
    if r.id == id and (not request_id or r.request.requestId == request_id) then
      return r
    end
  end
end

--- Close review `r`: its tab page goes (back to the tab it was opened from), its buffers too.
local function close(r)
  H.reviews[key(r.id, r.request.requestId)] = nil
  for _, b in ipairs(r.bufs) do
    if valid_buf(b) then
      vim.bo[b].modified = false
    end
  end
  if vim.api.nvim_tabpage_is_valid(r.tab) and #vim.api.nvim_list_tabpages() > 1 then
    local current = vim.api.nvim_get_current_tabpage() == r.tab
    vim.cmd("tabclose " .. vim.api.nvim_tabpage_get_number(r.tab))
    if current and r.from and vim.api.nvim_tabpage_is_valid(r.from) then
      vim.api.nvim_set_current_tabpage(r.from)
    end
  end
  for _, b in ipairs(r.bufs) do
    if valid_buf(b) then
      pcall(vim.api.nvim_buf_delete, b, { force = true })
    end
  end
end

--- The rewrite as the buffer now holds it.
local function rewrite_text(r)
  if not valid_buf(r.rewrite) then
    return r.request.augmented or ""
  end
  return table.concat(vim.api.nvim_buf_get_lines(r.rewrite, 0, -1, false), "\n")
end

local SAID = {
  accept = "sent the rewrite",
  edit = "sent your edit of the rewrite",
  decline = "sent your original prompt",
  cancel = "sent nothing (the prompt is dropped)",
}

--- Answer review `r`: `decision` accept, edit (with `text`), decline or cancel.
local function answer(r, decision, text)
  if r.answering then
    return
  end
  r.answering = true
  local params = { id = r.id, requestId = r.request.requestId, decision = decision, text = text }
  rpc.request("codex/session/respond", params, function(err, result)
    if err then
      r.answering = false
      rpc.notify_error(err, "answering the prompt review of " .. r.name)
      return
    end
    close(r)
    if result and result.session then
      require("codex_sessions.state").update(result.session)
    end
    util.notify(string.format("codex-sessions: %s: %s", r.name, SAID[decision]), vim.log.levels.INFO)
  end)
end

--- Send the right-hand side as it stands: the rewrite (accept), or the user's edit of it.
local function send_rewrite(r)
  local text = rewrite_text(r)
  local augmented = tostring(r.request.augmented or "")
  if text == augmented or text .. "\n" == augmented or text == augmented:gsub("\n$", "") then
    answer(r, "accept")
  elseif vim.trim(text) == "" then
    util.notify("codex-sessions: the rewrite is empty: write the prompt to send, or "
      .. (config.options.keys.review.decline and util.key_label(config.options.keys.review.decline) or "decline")
      .. " sends your original", vim.log.levels.ERROR)
  else
    answer(r, "edit", text)
  end
end

--- Run `action` ("accept", "edit", "decline", "cancel", "close") on the review shown in
--- buffer `buf` (the current one by default).
function M.act(action, buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local r = review_of(buf)
  if not r then
    util.notify("codex-sessions: not a prompt review", vim.log.levels.ERROR)
    return
  end
  if action == "accept" then
    send_rewrite(r)
  elseif action == "edit" then
    -- to the rewrite, to edit it; the accept key or :write sends it
    local win = vim.fn.win_findbuf(r.rewrite)[1]
    if win then
      vim.api.nvim_set_current_win(win)
    end
    if vim.bo[r.rewrite].modified then
      send_rewrite(r)
      return
    end
    local k = config.options.keys.review
    util.notify(string.format("codex-sessions: edit the rewrite, then :w%s sends it",
      k.edit and (" or " .. util.key_label(k.edit)) or ""), vim.log.levels.INFO)
  elseif action == "decline" then
    answer(r, "decline")
  elseif action == "cancel" then
    answer(r, "cancel")
  elseif action == "close" then
    close(r)
  end
end

local function map_keys(buf)
  local k = config.options.keys.review
  local function map(lhs, action, desc)
    util.map(buf, "n", lhs, function() M.act(action, buf) end, desc)
  end
  map(k.accept, "accept", "send the rewrite (with your edits, if you made any)")
  map(k.edit, "edit", "edit the rewrite (again, once edited: send the edit)")
  map(k.decline, "decline", "send your original prompt")
  map(k.cancel, "cancel", "send nothing")
  map(k.close, "close", "close the review (it still waits: :CodexSessions pending)")
  if k.help then
    vim.keymap.set("n", k.help, function() util.show_keys("prompt review", k) end,
      { buffer = buf, nowait = true, silent = true, desc = "codex-sessions: show keys" })
  end
end

--- A buffer of the review named `name`, holding `lines`.
local function review_buffer(name, lines, editable)
  local old = vim.fn.bufnr(name)
  if old > 0 then
    pcall(vim.api.nvim_buf_delete, old, { force = true })
  end
  local buf = vim.api.nvim_create_buf(false, not editable)
  vim.bo[buf].buftype = editable and "acwrite" or "nofile"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  pcall(vim.api.nvim_buf_set_name, buf, name)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = editable
  vim.bo[buf].modified = false
  return buf
end

--- The lines below the diff: what waits, the keys, the learnings the rewrite drew on.
function M.info_lines(session, request)
  local k = config.options.keys.review
  local lines = { string.format("%s: %s", label(session), tostring(request.reason or "learn mode rewrote the prompt")) }
  local keys = {}
  for _, a in ipairs({ { "accept", "send the rewrite (or your edit)" }, { "edit", "edit it" },
    { "decline", "send your original" }, { "cancel", "send nothing" }, { "close", "later" } }) do
    if k[a[1]] then
      table.insert(keys, util.key_label(k[a[1]]) .. " " .. a[2])
    end
  end
  table.insert(keys, ":w in the rewrite sends it")
  table.insert(lines, table.concat(keys, " · "))
  local sources = type(request.sources) == "table" and request.sources or {}
  if #sources == 0 then
    table.insert(lines, "Learnings it drew on: none")
  else
    table.insert(lines, "Learnings it drew on:")
    for _, s in ipairs(sources) do
      local line = s.line
      if type(line) ~= "string" or line == "" then
        line = string.format("session %s, turn %s: takeaway: %s", tostring(s.sessionName), tostring(s.turn),
          tostring(s.takeaway))
      end
      table.insert(lines, "  " .. (line:gsub("%s*\n%s*", " ")))
    end
  end
  return lines
end

local function diff_window(win, winbar)
  local function set(name, value)
    pcall(vim.api.nvim_set_option_value, name, value, { scope = "local", win = win })
  end
  vim.api.nvim_win_call(win, function() vim.cmd("diffthis") end)
  set("wrap", true)
  set("linebreak", true)
  set("number", false)
  set("relativenumber", false)
  set("foldcolumn", "0")
  set("winbar", winbar)
end

--- Open the review of `request` (a promptReview) of `session` in a tab page of its own
--- (or go to it, when it is open).
function M.open(session, request)
  local open = M.find(session.id, request.requestId)
  if open and vim.api.nvim_tabpage_is_valid(open.tab) then
    vim.api.nvim_set_current_tabpage(open.tab)
    return open
  elseif open then
    close(open)
  end
  local k = config.options.keys.review
  local base = string.format("codex-review://%s/%s/", session.project and session.project.name or "?",
    session.name or "?")
  local from = vim.api.nvim_get_current_tabpage()
  if vim.api.nvim_get_mode().mode:match("^[iR]") then
    vim.cmd("stopinsert")
  end
  local original = review_buffer(base .. "original", text_lines(request.original), false)
  local rewrite = review_buffer(base .. "rewrite", text_lines(request.augmented), true)
  local info = review_buffer(base .. "learnings", M.info_lines(session, request), false)
  local r = {
    id = session.id, request = request, name = label(session), from = from,
    bufs = { original, rewrite, info }, rewrite = rewrite, answering = false, seen = false,
  }
  H.reviews[key(session.id, request.requestId)] = r
  for _, b in ipairs(r.bufs) do
    vim.b[b].codex_sessions_id = session.id
    vim.bo[b].filetype = "codex_sessions_review"
    map_keys(b)
  end
  vim.api.nvim_create_autocmd("BufWriteCmd", {
    buffer = rewrite,
    callback = function() send_rewrite(r) end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = rewrite,
    callback = function()
      if H.reviews[key(r.id, r.request.requestId)] == r then
        H.reviews[key(r.id, r.request.requestId)] = nil
      end
    end,
  })
  vim.cmd("tab sbuffer " .. original)
  r.tab = vim.api.nvim_get_current_tabpage()
  local left = vim.api.nvim_get_current_win()
  vim.cmd("rightbelow vsplit")
  local right = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(right, rewrite)
  local lines = vim.api.nvim_buf_line_count(info)
  vim.cmd("botright " .. math.min(math.max(lines, 3), 10) .. "split")
  local bottom = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(bottom, info)
  for name, value in pairs({ wrap = true, linebreak = true, winfixheight = true, number = false,
    relativenumber = false, diff = false, scrollbind = false, cursorbind = false, foldenable = false,
    foldcolumn = "0" }) do
    pcall(vim.api.nvim_set_option_value, name, value, { scope = "local", win = bottom })
  end
  diff_window(left, " original: " .. (k.decline and util.key_label(k.decline) or "decline") .. " sends this")
  diff_window(right, " rewrite: " .. (k.accept and util.key_label(k.accept) or ":w") .. " sends this; edit it freely")
  vim.api.nvim_set_current_win(right)
  pcall(vim.api.nvim_win_set_cursor, right, { 1, 0 })
  return r
end

--- Open the review `session` waits on (its first, or `request_id`'s); say so when none.
function M.open_pending(session, request_id)
  for _, r in ipairs(type(session.pending) == "table" and session.pending or {}) do
    if M.is_review(r) and (not request_id or r.requestId == request_id) then
      return M.open(session, r)
    end
  end
  util.notify("codex-sessions: " .. label(session) .. " has no prompt to review", vim.log.levels.WARN)
end

--- A prompt review arrived (`codex/session/request`): it opens when the session is shown
--- in a window of this tab page; else it is announced (unless notify.waiting is off).
function M.on_request(session, request)
  local buffer = require("codex_sessions.buffer")
  if session and buffer.visible(session.id) then
    M.open(session, request)
    return
  end
  if config.options.notify.waiting then
    util.notify(util.one_line(string.format(
      "codex-sessions: %s: learn mode rewrote the prompt: review it with :CodexSessions pending",
      session and label(session) or "a session")), vim.log.levels.WARN)
  end
end

--- A session changed: an open review it no longer waits on (answered from elsewhere,
--- cancelled, killed) closes, with a word why.
function M.on_changed(session)
  for _, r in pairs(H.reviews) do
    if r.id == session.id and not r.answering then
      local still = false
      for _, p in ipairs(type(session.pending) == "table" and session.pending or {}) do
        still = still or p.requestId == r.request.requestId
      end
      if still then
        r.seen = true
      elseif r.seen or (session.status ~= "waiting" and session.status ~= "queued") then
        close(r)
        util.notify(string.format("codex-sessions: %s: the prompt review was answered or dropped elsewhere", r.name),
          vim.log.levels.INFO)
      end
    end
  end
end

return M
