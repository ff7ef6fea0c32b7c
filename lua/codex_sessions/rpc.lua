--- The connection to the codex-sessions daemon: `codex-sessions serve` (a relay that
--- starts the daemon when none runs) over vim.lsp.rpc.start. Started in the background
--- by the first command or completion, started again by the next command after it
--- ends, ended on VimLeavePre (the daemon and its sessions go on). Requests wait until
--- `initialize` has answered; nothing here blocks Neovim except request_sync.
local config = require("codex_sessions.config")
local util = require("codex_sessions.util")

local M = {}

local H = {
  client = nil, ---@type vim.lsp.rpc.PublicClient|nil
  ready = false, -- initialize answered
  queue = {}, -- requests sent before `ready`
  stopping = false, -- we are ending it on purpose
  generation = 0, -- which connection a callback belongs to
  connects = 0, -- connections that answered initialize
  handlers = {}, -- notification method -> function(params)
  server_info = nil,
  inflight = {}, -- n -> callback of a request sent and not answered yet
  next = 0,
}

--- Register the handler of a notification (one per method). Besides the daemon's
--- notifications: "codex-sessions/connected" {reconnect} and "codex-sessions/exited".
function M.on(method, fn)
  H.handlers[method] = fn
end

function M.is_running()
  return H.client ~= nil and not H.client.is_closing()
end

function M.info()
  return { running = M.is_running(), ready = H.ready, server = H.server_info, connects = H.connects }
end

local function error_message(err)
  if type(err) == "table" then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end
M.error_message = error_message

--- One ERROR notification with the daemon's message.
function M.notify_error(err, what)
  util.notify("codex-sessions: " .. (what and (what .. ": ") or "") .. error_message(err), vim.log.levels.ERROR)
end

local function dispatch(method, params)
  local fn = H.handlers[method]
  if fn then
    local ok, err = pcall(fn, params)
    if not ok then
      util.notify("codex-sessions: error handling " .. method .. ": " .. tostring(err), vim.log.levels.ERROR)
    end
  end
end

local function fire(pattern, data)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false, data = data })
end

--- Every request that will get no answer now (queued or sent) fails with `err`.
local function fail_queued(err)
  local queued = H.queue
  local inflight = H.inflight
  H.queue, H.inflight = {}, {}
  for _, q in ipairs(queued) do
    q.callback(err, nil)
  end
  local n = #queued
  for _, callback in pairs(inflight) do
    callback(err, nil)
    n = n + 1
  end
  return n
end

local function on_exit(gen, code, signal)
  if gen ~= H.generation then
    return
  end
  local expected = H.stopping
  local was_ready = H.ready
  H.client, H.ready = nil, false
  local failed = fail_queued({ code = -32099, message = "the connection to the codex-sessions daemon ended before it answered" })
  if not expected then
    if was_ready then
      util.notify(util.one_line(string.format(
        "codex-sessions: the connection to the daemon ended (serve exited, code %s); the next command reconnects",
        tostring(code))), vim.log.levels.WARN)
    elseif failed == 0 then
      util.notify(util.one_line(string.format(
        "codex-sessions: `%s` could not reach the daemon (code %s); see :checkhealth codex_sessions",
        table.concat(config.options.cmd, " "), tostring(code))), vim.log.levels.ERROR)
    end
  end
  fire("CodexSessionSidecarExited", { code = code, signal = signal, expected = expected })
  dispatch("codex-sessions/exited", { code = code, signal = signal, expected = expected })
end

local function on_initialized(gen, err, result)
  if gen ~= H.generation then
    return
  end
  if err then
    if #H.queue == 0 then
      M.notify_error(err, "the daemon refused to initialize (check the options)")
    end
    -- not usable: end it, so that the next command starts afresh
    H.stopping = true
    if H.client and not H.client.is_closing() then
      H.client.terminate()
    end
    fail_queued(err)
    return
  end
  H.server_info = result and result.serverInfo
  if H.client then
    H.client.notify("initialized", vim.empty_dict())
  end
  H.ready = true
  H.connects = H.connects + 1
  -- the cache first (a full list), then what was asked meanwhile
  dispatch("codex-sessions/connected", { reconnect = H.connects > 1 })
  local queued = H.queue
  H.queue = {}
  for _, q in ipairs(queued) do
    M.request(q.method, q.params, q.callback)
  end
  fire("CodexSessionSidecarStarted", { server = H.server_info })
end

local function start()
  require("codex_sessions.state") -- the notification handlers
  local opts = config.options
  H.generation = H.generation + 1
  local gen = H.generation
  H.ready, H.queue, H.stopping, H.server_info = false, {}, false, nil
  local dispatchers = {
    notification = function(method, params)
      vim.schedule(function()
        if gen == H.generation then
          dispatch(method, params)
        end
      end)
    end,
    server_request = function(method, _)
      return nil, { code = -32601, message = "codex-sessions (Neovim) does not handle " .. method }
    end,
    on_exit = function(code, signal)
      vim.schedule(function()
        on_exit(gen, code, signal)
      end)
    end,
    on_error = function(code, err)
      vim.schedule(function()
        util.notify("codex-sessions: transport error " .. tostring(code) .. ": " .. vim.inspect(err),
          vim.log.levels.ERROR)
      end)
    end,
  }
  local extra = { cwd = vim.uv.cwd() }
  if opts.env then
    extra.env = opts.env
  end
  local ok, client = pcall(vim.lsp.rpc.start, opts.cmd, dispatchers, extra)
  if not ok or not client then
    H.client = nil
    return nil, string.format(
      "cannot start the sidecar `%s`: %s. Install it (pipx install codex-sessions) or set the `cmd` option; see :checkhealth codex_sessions",
      table.concat(opts.cmd, " "), tostring(client))
  end
  H.client = client
  client.request("initialize", {
    processId = vim.fn.getpid(),
    clientInfo = { name = "Neovim", version = tostring(vim.version()) },
    rootUri = vim.NIL,
    capabilities = vim.empty_dict(),
    initializationOptions = config.init_options(),
  }, function(err, result)
    vim.schedule(function()
      on_initialized(gen, err, result)
    end)
  end)
  return client
end

--- Connect in the background if not connected (completion calls this: it never waits).
--- Returns an error message when `serve` cannot even be started.
function M.connect()
  if M.is_running() then
    return nil
  end
  local _, err = start()
  return err
end

--- Send a request; `callback(err, result)` runs in the main loop. Connects if needed.
---@param method string
---@param params table
---@param callback fun(err: table|nil, result: any)|nil
function M.request(method, params, callback)
  callback = callback or function(err)
    if err then
      M.notify_error(err)
    end
  end
  if not M.is_running() then
    local err = M.connect()
    if err then
      vim.schedule(function()
        callback({ code = -32005, message = err }, nil)
      end)
      return
    end
  end
  if not H.ready then
    table.insert(H.queue, { method = method, params = params, callback = callback })
    return
  end
  H.next = H.next + 1
  local n, gen = H.next, H.generation
  H.inflight[n] = callback
  local ok = H.client.request(method, params, function(err, result)
    vim.schedule(function()
      if gen == H.generation and H.inflight[n] then
        H.inflight[n] = nil
        callback(err, result)
      end
    end)
  end)
  if not ok then
    H.inflight[n] = nil
    vim.schedule(function()
      callback({ code = -32099, message = "not connected to the codex-sessions daemon" }, nil)
    end)
  end
end

--- A request that blocks up to `timeout` ms. The plugin itself uses it only in
--- :checkhealth; it is here for scripts and tests. Returns err, result.
function M.request_sync(method, params, timeout)
  local done, e, r = false, nil, nil
  M.request(method, params, function(err, result)
    done, e, r = true, err, result
  end)
  local ok = vim.wait(timeout or config.options.request_timeout, function()
    return done
  end, 10)
  if not ok then
    return { code = -32098, message = method .. " timed out" }, nil
  end
  return e, r
end

--- End this Neovim's connection (the daemon and its sessions go on). Does not wait:
--- the connection is done with at once, the next request makes a new one.
function M.disconnect()
  if not M.is_running() then
    return
  end
  local client = H.client
  if H.ready then
    pcall(client.notify, "exit", vim.NIL)
  end
  pcall(client.terminate)
  H.generation = H.generation + 1 -- what that connection still says is not heard
  H.client, H.ready = nil, false
  fail_queued({ code = -32099, message = "the connection to the codex-sessions daemon was ended" })
  fire("CodexSessionSidecarExited", { expected = true })
  dispatch("codex-sessions/exited", { expected = true })
end
M.stop = M.disconnect

return M
