'use strict';
// NestJS with its default Logger and exception filter: a controller method that throws a
// non-HTTP error is logged by the ExceptionsHandler context. Colours follow Nest's own rule
// (on unless NO_COLOR is set). Innocent lines go through a Logger of the app's own context.
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { Module, Controller, Get, Post, Req, Logger } = require('@nestjs/common');
const { drive, fail } = require('./lib/traffic');

// @corpus-shift
class ShopController {
  health() {
    return 'ok';
  }
  total(req) {
    return fail('total', req.originalUrl);
  }
  charge(req) {
    return fail('charge', req.originalUrl);
  }
  reserve(req) {
    return fail('reserve', req.originalUrl);
  }
  cart(req) {
    return fail('cart', req.originalUrl, req.body);
  }
  profile(req) {
    return fail('profile', req.originalUrl);
  }
}

// Decorators applied by hand: this file is plain JavaScript, as `nest build` output is.
const routes = [
  ['health', Get, 'health'],
  ['total', Get, 'orders/:order/total'],
  ['charge', Post, 'orders/:order/charge'],
  ['reserve', Post, 'stock/:sku/reserve'],
  ['cart', Post, 'cart'],
  ['profile', Get, 'users/:uuid/profile'],
];
for (const [method, verb, path] of routes) {
  const descriptor = Object.getOwnPropertyDescriptor(ShopController.prototype, method);
  Req()(ShopController.prototype, method, 0);
  verb(path)(ShopController.prototype, method, descriptor);
}
Controller()(ShopController);

class AppModule {}
Module({ controllers: [ShopController] })(AppModule);

async function main() {
  const app = await NestFactory.create(AppModule, { rawBody: false });
  app.useBodyParser('text', { type: '*/*' });
  await app.listen(0, '127.0.0.1');
  const logger = new Logger('Shop');
  const port = app.getHttpServer().address().port;
  await drive(port, (level, text) => (level === 'warn' ? logger.warn(text) : logger.log(text)), {
    all: { route: null },
  });
  await app.close();
}

main();
