// Loaded after require.js and before html-manager/embed-amd.js (see nb_ipywidgets_js).
// embed-amd.js defines the named AMD modules @jupyter-widgets/{base,controls,html-manager,...};
// webpack derives its publicPath (where the widget fonts/icons live) from each module's
// requirejs URI, which by default is relative to the *page* (-> 404 for
// notebooks/@jupyter-widgets/html-manager/dist/*.woff).  Point them at _static/html-manager/.
(function () {
  var s = document.currentScript;
  if (!s || !window.requirejs) { return; }
  var dir = s.src.slice(0, s.src.lastIndexOf('/') + 1) + 'html-manager/';
  var paths = { '@jupyter-widgets/html-manager/dist': dir.slice(0, -1) };
  ['base', 'base7', 'controls', 'controls7', 'html-manager', 'output'].forEach(function (m) {
    paths['@jupyter-widgets/' + m] = dir + m;
  });
  window.requirejs.config({ paths: paths });
})();
