import { fail } from '../../../../../lib/traffic';

export const dynamic = 'force-dynamic';

// A server component: what it throws reaches the log with the digest Next gives it.
// @corpus-shift
export default async function Profile({ params }) {
  const { uuid } = await params;
  fail('profile', `/users/${uuid}/profile`);
  return <p>{uuid}</p>;
}
