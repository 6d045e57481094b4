import { fail } from '../../../../../lib/traffic';

export const dynamic = 'force-dynamic';

// @corpus-shift
export async function GET(request) {
  const url = new URL(request.url);
  return Response.json(fail('total', url.pathname + url.search));
}
