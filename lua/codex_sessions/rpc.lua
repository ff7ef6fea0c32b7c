--- The sidecar: started on first use over vim.lsp.rpc.start, restarted after it dies,
--- stopped on VimLeavePre. Requests wait until `initialize` has answered.
local config = require("codex_sessions.config")

local M = {}

local H = {
  client = nil, ---@type vim.lsp.rpc.PublicClient|nil
  ready = false, -- initialize answered
  queue = {}, -- requests sent before `ready`
  stopping = false, -- we are ending it on purpose
  generation = 0, -- which sidecar a callback belongs to
  handlers = {}, -- notification method -> function(params)
  server_info = nil,
}

--- Register the handler of a sidecar notification (one per method).
function M.on(method, fn)
  H.handlers[method] = fn
end

function M.is_running()
  return H.client ~= nil and not H.client.is_closing()
end

function M.info()
  return { running = M.is_running(), ready = H.ready, server = H.server_info }
end

local function error_message(err)
  if type(err) == "table" then
    local msg = err.message or vim.inspect(err)
    return msg
  end
  return tostring(err)
end
M.error_message = error_message

--- One ERROR notification with the sidecar's message.
function M.notify_error(err, what)
  local msg = error_message(err)
  vim.notify("codex-sessions: " .. (what and (what .. ": ") or "") .. msg, vim.log.levels.ERROR)
end

local function dispatch(method, params)
  local fn = H.handlers[method]
  if fn then
    local ok, err = pcall(fn, params)
    if not ok then
      vim.notify("codex-sessions: error handling " .. method .. ": " .. tostring(err), vim.log.levels.ERROR)
    end
  end
end

local function fire(pattern, data)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false, data = data })
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
        if gen ~= H.generation then
          return
        end
        local expected = H.stopping
        H.client, H.ready = nil, false
        local queued = H.queue
        H.queue = {}
        for _, q in ipairs(queued) do
          q.callback({ code = -32099, message = "the sidecar exited before answering" }, nil)
        end
        if not expected then
          vim.notify(string.format(
            "codex-sessions: the sidecar exited (code %s, signal %s); the next command restarts it. Command: %s",
            tostring(code), tostring(signal), table.concat(opts.cmd, " ")), vim.log.levels.ERROR)
        end
        fire("CodexSessionSidecarExited", { code = code, signal = signal, expected = expected })
        dispatch("codex-sessions/exited", { code = code, signal = signal })
      end)
    end,
    on_error = function(code, err)
      vim.schedule(function()
        vim.notify("codex-sessions: sidecar transport error " .. tostring(code) .. ": " .. vim.inspect(err),
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
      "cannot start the sidecar `%s`: %s. Install it (pip install codex-sessions) or set the `cmd` option; see :checkhealth codex_sessions",
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
    if gen ~= H.generation then
      return
    end
    if err then
      local queued = H.queue
      if #queued == 0 then
        M.notify_error(err, "the sidecar refused to initialize (check the options)")
      end
      H.queue = {}
      -- not usable: end it, so that the next command starts a fresh one
      H.stopping = true
      if H.client and not H.client.is_closing() then
        H.client.terminate()
      end
      for _, q in ipairs(queued) do
        q.callback(err, nil)
      end
      return
    end
    H.server_info = result and result.serverInfo
    if H.client then
      H.client.notify("initialized", vim.empty_dict())
    end
    H.ready = true
    local queued = H.queue
    H.queue = {}
    for _, q in ipairs(queued) do
      M.request(q.method, q.params, q.callback)
    end
    fire("CodexSessionSidecarStarted", { server = H.server_info })
  end)
  return client
end

--- Send a request; `callback(err, result)` runs in the main loop. Starts the sidecar if needed.
---@param method string
---@param params table
---@param callback fun(err: table|nil, result: any)
function M.request(method, params, callback)
  callback = callback or function(err)
    if err then
      M.notify_error(err)
    end
  end
  if not M.is_running() then
    local _, err = start()
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
  local ok = H.client.request(method, params, function(err, result)
    vim.schedule(function()
      callback(err, result)
    end)
  end)
  if not ok then
    vim.schedule(function()
      callback({ code = -32099, message = "the sidecar is not running" }, nil)
    end)
  end
end

--- A request that blocks up to `timeout` ms (for completion and exit). Returns err, result.
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

--- Stop the sidecar: shutdown (it stops its Codex processes, keeps every record), exit.
function M.stop(timeout)
  if not M.is_running() then
    return
  end
  H.stopping = true
  local client = H.client
  if H.ready then
    local done = false
    client.request("shutdown", vim.NIL, function()
      done = true
    end)
    vim.wait(timeout or 5000, function()
      return done or client.is_closing()
    end, 10)
    if not client.is_closing() then
      client.notify("exit", vim.NIL)
    end
    -- give it a moment to exit by itself, then make sure
    vim.wait(1000, function()
      return H.client == nil
    end, 10)
  end
  if H.client == client and not client.is_closing() then
    client.terminate()
  end
end

return M
