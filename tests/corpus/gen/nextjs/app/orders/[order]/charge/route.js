import { fail } from '../../../../../lib/traffic';

export const dynamic = 'force-dynamic';

// @corpus-shift
export async function POST(request) {
  const url = new URL(request.url);
  return Response.json(fail('charge', url.pathname + url.search, await request.text()));
}
