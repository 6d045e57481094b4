// The service's own code, in TypeScript: the faults are thrown here.
// @corpus-shift

export class PaymentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PaymentError';
  }
}

interface Order {
  lines: { price: number }[];
}

export function orderTotal(order: Order | undefined): number {
  return (order as Order).lines.reduce((sum, line) => sum + line.price, 0);
}

export function chargeCard(orderNo: string, userId: string): never {
  throw new PaymentError(`card declined for order ${orderNo} (user ${userId})`);
}

export function loadProfile(uuid: string): never {
  throw new Error(`profile ${uuid} has no tenant`);
}
