'use strict';
// Server code unminified and with source maps, so stacks name the app's own files.
module.exports = { experimental: { serverMinification: false, serverSourceMaps: true } };
