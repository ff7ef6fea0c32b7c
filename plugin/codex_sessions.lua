-- codex-sessions: the :CodexSessions command, highlights and the exit hook.
-- Everything else loads on first use.
if vim.g.loaded_codex_sessions then
  return
end
vim.g.loaded_codex_sessions = true

if vim.fn.has("nvim-0.10") == 0 then
  vim.notify("codex-sessions needs Neovim 0.10 or newer", vim.log.levels.ERROR)
  return
end

local function highlights()
  local links = {
    CodexSessionsHeader = "Title",
    CodexSessionsHint = "Comment",
    CodexSessionsSeparator = "NonText",
    CodexSessionsUser = "Identifier",
    CodexSessionsAgent = "Normal",
    CodexSessionsReasoning = "Comment",
    CodexSessionsCommand = "Statement",
    CodexSessionsCommandFailed = "DiagnosticError",
    CodexSessionsOutput = "Comment",
    CodexSessionsFileChange = "DiffChange",
    CodexSessionsRequest = "DiagnosticWarn",
    CodexSessionsDecision = "DiagnosticInfo",
    CodexSessionsError = "ErrorMsg",
    CodexSessionsStatusLine = "Comment",
    CodexSessionsStatusWaiting = "DiagnosticWarn",
    CodexSessionsStatusFailed = "DiagnosticError",
    CodexSessionsStatusRunning = "DiagnosticInfo",
    CodexSessionsStatusStarting = "DiagnosticInfo",
    CodexSessionsStatusQueued = "DiagnosticHint",
    CodexSessionsStatusIdle = "DiagnosticOk",
    CodexSessionsStatusStopped = "Comment",
    CodexSessionsStatusInterrupted = "DiagnosticWarn",
    CodexSessionsNote = "Special",
    CodexSessionsOverlap = "DiagnosticWarn",
  }
  for group, link in pairs(links) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end
highlights()

local group = vim.api.nvim_create_augroup("codex_sessions", { clear = true })
vim.api.nvim_create_autocmd("ColorScheme", { group = group, callback = highlights })
vim.api.nvim_create_autocmd("VimLeavePre", {
  group = group,
  callback = function()
    if package.loaded["codex_sessions.rpc"] then
      require("codex_sessions").on_exit()
    end
  end,
})

vim.api.nvim_create_user_command("CodexSessions", function(opts)
  require("codex_sessions.state") -- notification handlers
  require("codex_sessions.commands").run(opts)
end, {
  nargs = "*",
  bang = true,
  range = true,
  desc = "codex-sessions: list, start[!], switch, send, steer, file, pending, cancel, report, rename, kill, killall[!], "
    .. "resume, forget, diff, merge, discard, fork, review, adopt, tui, notes, learn, learnings, 1..10",
  complete = function(arglead, cmdline, pos)
    require("codex_sessions.state")
    return require("codex_sessions.commands").complete(arglead, cmdline, pos)
  end,
})

-- <Plug>(CodexSessions-1) .. <Plug>(CodexSessions-10): the project's session number N, as
-- the list numbers them, for users to bind (e.g. <leader>1 .. <leader>0).
for n = 1, 10 do
  vim.keymap.set("n", "<Plug>(CodexSessions-" .. n .. ")", function()
    require("codex_sessions.state") -- notification handlers
    require("codex_sessions.actions").jump(n)
  end, { desc = "codex-sessions: session number " .. n .. " of the project" })
end
