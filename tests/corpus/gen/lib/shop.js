'use strict';
// The shop's own code: every fault in the corpus is thrown (or raised by V8) in one of
// these functions, so each one is the top in-app frame of its stack.
// @corpus-shift

class PaymentError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PaymentError';
  }
}

function orderTotal(order) {
  return order.lines.reduce((sum, line) => sum + line.price, 0);
}

function chargeCard(orderNo, userId) {
  throw new PaymentError(`card declined for order ${orderNo} (user ${userId})`);
}

function reserveStock(sku, quantity) {
  throw new RangeError(`cannot reserve ${quantity} of sku ${sku}: only 0 left`);
}

function parseCart(body) {
  return JSON.parse(body);
}

function loadProfile(uuid) {
  throw new Error(`profile ${uuid} has no tenant`);
}

module.exports = { PaymentError, orderTotal, chargeCard, reserveStock, parseCart, loadProfile };
