/* Session replay loader: the only synchronous part of the embed. It defines window.Replay (calls
   are queued until the recorder is ready) and loads the recorder module and its wasm
   asynchronously. It never throws into the page. */
(function (w, d) {
  try {
    var s = d.currentScript;
    if (!s || w.Replay) return;
    var done, ready = new Promise(function (r) { done = r; }), api = {};
    'init identify setFlags setRelease setEnvironment addEvent captureError flush stop sessionUrl'
      .split(' ').forEach(function (m) {
        api[m] = function () {
          var a = arguments;
          return ready.then(function (core) { return core[m].apply(core, a); });
        };
      });
    w.Replay = api;
    var src = s.src, data = {}, attrs = s.attributes;
    for (var i = 0; i < attrs.length; i++) {
      if (attrs[i].name.indexOf('data-') === 0) data[attrs[i].name.slice(5)] = attrs[i].value;
    }
    import(new URL('recorder/core.js', src).href).then(function (m) {
      return m.boot(src, data);
    }).then(done, function () {});
  } catch (e) { /* never break the host page */ }
})(window, document);
