// Writes the redaction corpus: realistic error logs that carry secrets, as a Node.js service
// prints them (console.error of errors with properties, Express-style "ERROR GET /path"
// lines) and as pino, winston and bunyan write them, plus cases.json: for every case the
// secrets that must never leave the host and the text around them that must survive.
//
//   node tests/redaction/generate.js OUT_DIR
//
// Secrets are fake but shaped like the real thing (a seeded generator makes them, so the
// output is the same on every run). Stack paths are rewritten to a deploy path, the way
// they look on a prod host.
'use strict';

const fs = require('fs');
const path = require('path');
const util = require('util');
const { Writable } = require('stream');

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node generate.js OUT_DIR\n');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

// --- deterministic fake secrets -------------------------------------------------------

let seed = 0x5eed1e55;
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';
const B64 = ALNUM + '+/';
const URLSAFE = ALNUM + '-_';
function rand(alphabet, n) {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
}
function pem(kind) {
  const body = [];
  for (let i = 0; i < 6; i++) body.push(rand(B64, 64));
  body.push(rand(B64, 20) + '==');
  return { text: `-----BEGIN ${kind}-----\n${body.join('\n')}\n-----END ${kind}-----\n`, body };
}

const APP = '/srv/pa/current';
function deployPaths(text) {
  return text.split(__dirname).join(`${APP}/src`);
}

// --- the cases -------------------------------------------------------------------------

// Each case is one error as the service logs it. `message` is the error's message; `props`
// are extra properties Node prints after the stack; `route` is the request it failed in.
// `secrets` must vanish from everything the agent stores or relays; `keep` must survive.
const cases = [];
function add(c) {
  cases.push({ props: null, route: 'GET /api/health', keep: [], name: 'Error', ...c });
}

const pw1 = `Winter${rand(ALNUM, 6)}!`;
const pw2 = `Winter${rand(ALNUM, 6)}?`;
add({
  id: 'password-confirm-json-body',
  route: 'POST /api/users',
  name: 'ValidationError',
  message: `passwords do not match in body {"email":"ana@example.com","password":"${pw1}","passwordConfirm":"${pw2}"}`,
  secrets: [pw1, pw2],
  keep: ['ana@example.com', 'passwords do not match', '"passwordConfirm":"'],
});
const npw = `Tr0ub4dor&${rand(ALNUM, 5)}`;
const npwr = `Tr0ub4dor#${rand(ALNUM, 5)}`;
add({
  id: 'new-password-repeat-props',
  route: 'POST /api/account/password',
  message: 'password change rejected',
  props: { body: { currentPassword: `old-${rand(ALNUM, 10)}`, newPassword: npw, newPasswordRepeat: npwr } },
  secrets: [npw, npwr],
  keep: ['password change rejected', 'newPasswordRepeat'],
});
const snake1 = `pw_${rand(ALNUM, 12)}`;
const snake2 = `pw_${rand(ALNUM, 12)}`;
add({
  id: 'new-password-repeat-snake-form',
  route: 'POST /account/reset',
  message: `form rejected: new_password=${snake1}&new_password_repeat=${snake2}&lang=de`,
  secrets: [snake1, snake2],
  keep: ['lang=de', 'form rejected'],
});
const key1 = pem('PRIVATE KEY');
add({
  id: 'pem-in-props-continuation-lines',
  route: 'POST /api/invoices/sign',
  message: 'error:1E08010C:DECODER routines::unsupported',
  props: { code: 'ERR_OSSL_UNSUPPORTED', signingKey: key1.text },
  secrets: key1.body,
  keep: ['DECODER routines::unsupported', 'ERR_OSSL_UNSUPPORTED'],
});
const key2 = pem('RSA PRIVATE KEY');
add({
  id: 'pem-in-message',
  route: 'POST /api/webhooks/github',
  message: `cannot load key from GITHUB_APP_KEY: ${key2.text}`,
  secrets: key2.body,
  keep: ['cannot load key from GITHUB_APP_KEY'],
});
const slashpw = `${rand(ALNUM, 5)}/${rand(ALNUM, 6)}`;
add({
  id: 'url-password-with-slash',
  name: 'MongoServerSelectionError',
  message: `connect ECONNREFUSED for mongodb://shop:${slashpw}@db-1.internal:27017/shop?authSource=admin`,
  secrets: [slashpw],
  keep: ['db-1.internal:27017/shop', 'mongodb://shop:'],
});
const tg = `${Math.floor(1e9 + random() * 8e9)}:AA${rand(URLSAFE, 33)}`;
add({
  id: 'telegram-bot-token-in-url',
  route: 'POST /api/notify',
  name: 'FetchError',
  message: `request to https://api.telegram.org/bot${tg}/getUpdates failed, reason: socket hang up`,
  secrets: [tg],
  keep: ['https://api.telegram.org/bot', '/getUpdates failed', 'socket hang up'],
});
const azkey = rand(B64, 86) + '==';
add({
  id: 'azure-account-key',
  name: 'RestError',
  message: `connection string invalid: DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey=${azkey};EndpointSuffix=core.windows.net`,
  secrets: [azkey],
  keep: ['AccountName=acmeprod', 'EndpointSuffix=core.windows.net'],
});
const sas = `${rand(ALNUM, 30)}%2B${rand(ALNUM, 10)}%3D`;
add({
  id: 'azure-sas-sig',
  route: 'GET /api/files/report.pdf',
  name: 'RestError',
  message: `403 This request is not authorized: https://acmeprod.blob.core.windows.net/reports/report.pdf?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&sig=${sas}`,
  secrets: [sas],
  keep: ['403 This request is not authorized', 'sv=2022-11-02', 'acmeprod.blob.core.windows.net'],
});
const apim = rand(HEX, 32);
add({
  id: 'ocp-apim-subscription-key',
  route: 'GET /api/quotes',
  name: 'AxiosError',
  message: 'Request failed with status code 401',
  props: {
    code: 'ERR_BAD_REQUEST',
    config: { headers: { Accept: 'application/json', 'Ocp-Apim-Subscription-Key': apim } },
  },
  secrets: [apim],
  keep: ['Request failed with status code 401', 'ERR_BAD_REQUEST', 'application/json'],
});
const discord = `${rand('0123456789', 19)}/${rand(URLSAFE, 68)}`;
add({
  id: 'discord-webhook-url',
  route: 'POST /api/alerts',
  message: `alert delivery failed: POST https://discord.com/api/webhooks/${discord} returned 429`,
  secrets: [discord.split('/')[1]],
  keep: ['alert delivery failed', 'returned 429'],
});
const glpat = `glpat-${rand(URLSAFE, 20)}`;
const sg = `SG.${rand(URLSAFE, 22)}.${rand(URLSAFE, 43)}`;
const npm = `npm_${rand(ALNUM, 36)}`;
const hf = `hf_${rand(ALNUM, 34)}`;
add({
  id: 'gitlab-token-bare',
  message: `git clone https://gitlab.example.com/shop/api.git failed with ${glpat}`,
  secrets: [glpat],
  keep: ['gitlab.example.com/shop/api.git'],
});
add({
  id: 'sendgrid-key-bare',
  route: 'POST /api/mail',
  name: 'ResponseError',
  message: `Unauthorized (401) using ${sg}`,
  secrets: [sg],
  keep: ['Unauthorized (401)'],
});
add({
  id: 'npm-token-bare',
  message: `npm ERR! 403 Forbidden - PUT https://registry.npmjs.org/@acme%2fui - ${npm}`,
  secrets: [npm],
  keep: ['403 Forbidden', 'registry.npmjs.org/@acme%2fui'],
});
add({
  id: 'huggingface-token-bare',
  route: 'POST /api/summarize',
  message: `inference API 401 for ${hf}`,
  secrets: [hf],
  keep: ['inference API 401'],
});
const ghp = `ghp_${rand(ALNUM, 36)}`;
const xoxb = `xoxb-${rand('0123456789', 12)}-${rand('0123456789', 13)}-${rand(ALNUM, 24)}`;
const stripe = `sk_live_${rand(ALNUM, 24)}`;
const akia = `AKIA${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`;
const awssecret = rand(B64, 40);
const ant = `sk-ant-api03-${rand(URLSAFE, 40)}`;
add({
  id: 'github-token-bare',
  message: `HttpError: Bad credentials for ${ghp}`,
  secrets: [ghp],
  keep: ['Bad credentials for'],
});
add({
  id: 'slack-token-bare',
  message: `slack chat.postMessage invalid_auth (${xoxb})`,
  secrets: [xoxb],
  keep: ['invalid_auth'],
});
add({
  id: 'stripe-key-bare',
  route: 'POST /api/charge',
  name: 'StripeAuthenticationError',
  message: `Invalid API Key provided: ${stripe}`,
  secrets: [stripe],
  keep: ['Invalid API Key provided'],
});
add({
  id: 'aws-keys',
  name: 'InvalidSignatureException',
  message: 'The request signature we calculated does not match the signature you provided',
  props: { credentials: { accessKeyId: akia, secretAccessKey: awssecret }, $metadata: { httpStatusCode: 403 } },
  secrets: [akia, awssecret],
  keep: ['httpStatusCode: 403', 'does not match the signature you provided'],
});
add({
  id: 'anthropic-key-bare',
  route: 'POST /api/assist',
  name: 'AuthenticationError',
  message: `401 invalid x-api-key ${ant}`,
  secrets: [ant],
  keep: ['401 invalid x-api-key'],
});
const sid = `s%3A${rand(URLSAFE, 32)}.${rand(URLSAFE, 43)}`;
add({
  id: 'set-cookie-array',
  route: 'POST /api/login',
  message: 'response already sent',
  props: { headers: { 'set-cookie': [`connect.sid=${sid}; Path=/; HttpOnly`], 'content-type': 'text/html' } },
  secrets: [sid],
  keep: ['response already sent', 'text/html'],
});
const sessid = rand(HEX, 40);
const csrf = rand(URLSAFE, 24);
add({
  id: 'cookie-session-id',
  route: 'GET /api/cart',
  message: 'session lookup failed',
  props: { headers: { cookie: `theme=dark; session_id=${sessid}; csrftoken=${csrf}`, 'user-agent': 'Mozilla/5.0' } },
  secrets: [sessid, csrf],
  keep: ['session lookup failed', 'Mozilla/5.0'],
});
const qpass = `${rand(ALNUM, 10)}!9`;
add({
  id: 'pass-in-query-string',
  route: `GET /legacy/login?user=bob&pass=${qpass}&remember=1`,
  message: `upstream 500 for /legacy/login?user=bob&pass=${qpass}&remember=1`,
  secrets: [qpass],
  keep: ['user=bob', 'remember=1', 'upstream 500'],
});
const reset = rand(HEX, 64);
add({
  id: 'reset-token-in-route',
  route: `GET /api/password/reset/${reset}`,
  name: 'TokenExpiredError',
  message: 'jwt expired',
  secrets: [reset],
  keep: ['jwt expired', '/api/password/reset/'],
});
const verify = rand(URLSAFE, 43);
add({
  id: 'verify-token-in-route',
  route: `POST /auth/verify-email/${verify}`,
  message: 'verification link already used',
  secrets: [verify],
  keep: ['verification link already used', '/auth/verify-email/'],
});
const escpw = `${rand(ALNUM, 12)}`;
add({
  id: 'unicode-escaped-json-body',
  route: 'POST /api/login',
  name: 'SyntaxError',
  message: `Unexpected token } in JSON at position 58 while parsing {\\u0022user\\u0022:\\u0022bob\\u0022,\\u0022password\\u0022:\\u0022${escpw}\\u0022}`,
  secrets: [escpw],
  keep: ['Unexpected token } in JSON at position 58', 'bob'],
});
const jwt = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ${rand(URLSAFE, 60)}.${rand(URLSAFE, 43)}`;
add({
  id: 'bearer-jwt-header',
  route: 'GET /api/orders',
  name: 'UnauthorizedError',
  message: 'invalid signature',
  props: { headers: { authorization: `Bearer ${jwt}`, host: 'api.example.com' } },
  secrets: [jwt],
  keep: ['invalid signature', 'api.example.com'],
});
const basic = Buffer.from(`admin:${rand(ALNUM, 12)}`).toString('base64');
add({
  id: 'basic-auth-header',
  route: 'GET /admin/metrics',
  message: 'upstream refused credentials',
  props: { headers: { Authorization: `Basic ${basic}` } },
  secrets: [basic],
  keep: ['upstream refused credentials'],
});
const pgpw = rand(ALNUM, 16);
add({
  id: 'postgres-url-password',
  name: 'ConnectionError',
  message: `password authentication failed for postgres://billing:${pgpw}@pg-1:5432/billing`,
  secrets: [pgpw],
  keep: ['password authentication failed', '@pg-1:5432/billing'],
});
const dbpw = `${rand(ALNUM, 10)}$${rand(ALNUM, 4)}`;
add({
  id: 'env-style-password',
  message: `config check failed: DB_HOST=pg-1 DB_PASSWORD=${dbpw} DB_POOL=10`,
  secrets: [dbpw],
  keep: ['DB_HOST=pg-1', 'DB_POOL=10'],
});
const apikey = rand(HEX, 32);
add({
  id: 'api-key-query',
  route: 'GET /api/weather',
  name: 'FetchError',
  message: `GET https://api.weather.example/v2/forecast?q=Berlin&apiKey=${apikey} 401 Unauthorized`,
  secrets: [apikey],
  keep: ['q=Berlin', '401 Unauthorized'],
});
const clientSecret = rand(URLSAFE, 40);
add({
  id: 'oauth-client-secret-props',
  route: 'GET /auth/callback',
  name: 'OAuthError',
  message: 'invalid_client',
  props: { body: { grant_type: 'authorization_code', client_id: 'shop-web', client_secret: clientSecret } },
  secrets: [clientSecret],
  keep: ['invalid_client', 'shop-web', 'authorization_code'],
});
const refresh = rand(URLSAFE, 48);
add({
  id: 'refresh-token-props',
  route: 'POST /auth/refresh',
  message: 'refresh failed',
  props: { refreshToken: refresh, userId: 'u_48213' },
  secrets: [refresh],
  keep: ['refresh failed', 'u_48213'],
});
const webhookSecret = `whsec_${rand(ALNUM, 32)}`;
add({
  id: 'stripe-webhook-secret',
  route: 'POST /webhooks/stripe',
  name: 'StripeSignatureVerificationError',
  message: `No signatures found matching the expected signature for payload using ${webhookSecret}`,
  secrets: [webhookSecret],
  keep: ['No signatures found matching the expected signature'],
});
const hmac = rand(HEX, 64);
add({
  id: 'signature-header',
  route: 'POST /webhooks/shopify',
  message: 'webhook signature mismatch',
  props: { headers: { 'x-hub-signature-256': `sha256=${hmac}` } },
  secrets: [hmac],
  keep: ['webhook signature mismatch'],
});
const redispw = rand(ALNUM, 20);
add({
  id: 'redis-url-password',
  name: 'ReplyError',
  message: `WRONGPASS invalid username-password pair connecting to redis://default:${redispw}@cache-1:6379/0`,
  secrets: [redispw],
  keep: ['WRONGPASS', '@cache-1:6379/0'],
});
const xapikey = rand(URLSAFE, 32);
add({
  id: 'x-api-key-header-text',
  route: 'POST /api/sync',
  message: `partner API rejected header x-api-key: ${xapikey}`,
  secrets: [xapikey],
  keep: ['partner API rejected header'],
});
const googleKey = `AIza${rand(URLSAFE, 35)}`;
add({
  id: 'google-key-query',
  route: 'GET /api/geocode',
  message: `REQUEST_DENIED for https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=${googleKey}`,
  secrets: [googleKey],
  keep: ['REQUEST_DENIED', 'address=Berlin'],
});
const envDb = `envOnly-${rand(ALNUM, 14)}`;
add({
  id: 'value-from-env-without-key-name',
  message: `could not log in as billing with '${envDb}' (auth plugin caching_sha2_password)`,
  secrets: [envDb],
  keep: ['could not log in as billing'],
  env: { DB_PASSWORD: envDb },
});

const mysqlpw = `${rand(ALNUM, 8)}@${rand(ALNUM, 4)}`.replace('@', '%40');
add({
  id: 'mysql-url-encoded-password',
  name: 'SequelizeConnectionError',
  message: `Access denied for user 'shop'@'10.0.3.7' (mysql://shop:${mysqlpw}@mysql-1:3306/shop)`,
  secrets: [mysqlpw],
  keep: ["Access denied for user 'shop'@'10.0.3.7'", '@mysql-1:3306/shop'],
});
const twilio = rand(HEX, 32);
add({
  id: 'twilio-basic-auth-url',
  route: 'POST /api/sms',
  message: `POST https://AC${rand(HEX, 32)}:${twilio}@api.twilio.com/2010-04-01/Messages.json 401`,
  secrets: [twilio],
  keep: ['api.twilio.com/2010-04-01/Messages.json 401'],
});
const xauth = rand(URLSAFE, 40);
add({
  id: 'x-auth-token-props',
  route: 'GET /api/inventory',
  message: 'upstream 403',
  props: { headers: { 'X-Auth-Token': xauth, 'X-Request-Id': 'req-7731' } },
  secrets: [xauth],
  keep: ['upstream 403', 'req-7731'],
});
const oauthAt = rand(URLSAFE, 44);
add({
  id: 'access-token-in-callback-url',
  route: 'GET /auth/callback',
  message: `redirect rejected: https://app.example.com/cb#state=xyz&access_token=${oauthAt}&token_type=Bearer&expires_in=3600`,
  secrets: [oauthAt],
  keep: ['redirect rejected', 'expires_in=3600'],
});
const sa = pem('PRIVATE KEY');
add({
  id: 'service-account-json-escaped-pem',
  name: 'GaxiosError',
  message: `invalid_grant: could not sign JWT with {"type":"service_account","client_email":"ci@acme.iam.gserviceaccount.com","private_key":${JSON.stringify(sa.text)}}`,
  secrets: sa.body,
  keep: ['invalid_grant', 'ci@acme.iam.gserviceaccount.com'],
});
const pgenv = rand(ALNUM, 18);
add({
  id: 'pgpassword-env',
  message: `spawn pg_dump failed: PGHOST=pg-1 PGUSER=backup PGPASSWORD=${pgenv} exit 1`,
  secrets: [pgenv],
  keep: ['PGUSER=backup', 'exit 1'],
});
const bareJwt = `eyJhbGciOiJSUzI1NiJ9.eyJ${rand(URLSAFE, 80)}.${rand(URLSAFE, 86)}`;
add({
  id: 'jwt-bare-in-message',
  name: 'JsonWebTokenError',
  message: `jwt audience invalid. expected: shop-api for ${bareJwt}`,
  secrets: [bareJwt],
  keep: ['jwt audience invalid. expected: shop-api'],
});
const phrase = `${rand(ALNUM, 6)} ${rand(ALNUM, 6)} ${rand(ALNUM, 6)}`;
add({
  id: 'passphrase-props',
  message: 'bad decrypt',
  props: { library: 'digital envelope routines', passphrase: phrase },
  secrets: [phrase],
  keep: ['bad decrypt', 'digital envelope routines'],
});
const openai = `sk-proj-${rand(URLSAFE, 48)}`;
add({
  id: 'openai-key-bare',
  route: 'POST /api/assist',
  name: 'APIError',
  message: `401 Incorrect API key provided: ${openai}`,
  secrets: [openai],
  keep: ['401 Incorrect API key provided'],
});
const mailgun = `key-${rand(HEX, 32)}`;
add({
  id: 'mailgun-key-url',
  route: 'POST /api/mail',
  message: `POST https://api:${mailgun}@api.mailgun.net/v3/mg.example.com/messages failed`,
  secrets: [mailgun],
  keep: ['api.mailgun.net/v3/mg.example.com/messages failed'],
});
const yamlSecret = `${rand(ALNUM, 20)}`;
add({
  id: 'secret-key-prose-form',
  message: `refusing to start: session secret: ${yamlSecret} is shorter than 32 bytes`,
  secrets: [yamlSecret],
  keep: ['refusing to start', 'is shorter than 32 bytes'],
});
const dburl = rand(ALNUM, 14);
add({
  id: 'database-url-env',
  message: `prisma: P1000 Authentication failed, DATABASE_URL=postgresql://app:${dburl}@pg-2:5432/app?schema=public`,
  secrets: [dburl],
  keep: ['P1000 Authentication failed', '@pg-2:5432/app'],
});
const exportTok = rand(URLSAFE, 32);
add({
  id: 'token-query-in-text-route',
  route: `GET /api/export.csv?token=${exportTok}&range=30d`,
  message: 'export stream closed early',
  secrets: [exportTok],
  keep: ['export stream closed early', 'range=30d'],
});
const stsToken = `IQoJb3JpZ2luX2Vj${rand(B64, 120)}`;
add({
  id: 'aws-session-token-props',
  name: 'ExpiredToken',
  message: 'The security token included in the request is expired',
  props: { sessionToken: stsToken, region: 'eu-central-1' },
  secrets: [stsToken],
  keep: ['The security token included in the request is expired', 'eu-central-1'],
});
const amzSig = rand(HEX, 64);
add({
  id: 's3-presigned-url',
  route: 'GET /api/avatar',
  name: 'S3ServiceException',
  message: `SignatureDoesNotMatch for https://acme-media.s3.eu-central-1.amazonaws.com/avatars/42.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${akia}%2F20261126%2Feu-central-1%2Fs3%2Faws4_request&X-Amz-Expires=900&X-Amz-Signature=${amzSig}`,
  secrets: [amzSig, akia],
  keep: ['SignatureDoesNotMatch', 'X-Amz-Expires=900', 'avatars/42.png'],
});
const pyKey = rand(HEX, 40);
add({
  id: 'python-dict-repr-api-key',
  route: 'POST /api/ml/score',
  message: `scoring service said 401 for payload {'model': 'churn-v3', 'api_key': '${pyKey}'}`,
  secrets: [pyKey],
  keep: ["'model': 'churn-v3'", 'scoring service said 401'],
});
const proxyBasic = Buffer.from(`proxy:${rand(ALNUM, 14)}`).toString('base64');
add({
  id: 'proxy-authorization-header-line',
  route: 'GET /api/rates',
  message: `tunneling socket could not be established, sent Proxy-Authorization: Basic ${proxyBasic}`,
  secrets: [proxyBasic],
  keep: ['tunneling socket could not be established'],
});
const slackHook = `T${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 8)}/B${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 10)}/${rand(ALNUM, 24)}`;
add({
  id: 'slack-webhook-url',
  route: 'POST /api/alerts',
  message: `POST https://hooks.slack.com/services/${slackHook} 404 no_team`,
  secrets: [slackHook],
  keep: ['404 no_team'],
});
const wsTok = rand(URLSAFE, 36);
add({
  id: 'websocket-url-token',
  name: 'WebSocketError',
  message: `Unexpected server response: 401 for wss://realtime.example.com/socket?vsn=2.0.0&token=${wsTok}`,
  secrets: [wsTok],
  keep: ['Unexpected server response: 401', 'vsn=2.0.0'],
});
const confirmPw = `${rand(ALNUM, 9)}#1`;
add({
  id: 'confirm-password-word-order',
  route: 'POST /api/signup',
  name: 'ValidationError',
  message: 'confirmation does not match',
  props: { fields: { confirm_password: confirmPw, PasswordConfirmation: confirmPw + 'x' } },
  secrets: [confirmPw],
  keep: ['confirmation does not match'],
});

const opaque = rand(URLSAFE, 40);
add({
  id: 'bearer-header-line-opaque',
  route: 'GET /api/me',
  message: `sent headers: Authorization: Bearer ${opaque}`,
  secrets: [opaque],
  keep: ['sent headers: Authorization: Bearer '],
});
const jsonSecret = rand(ALNUM, 24);
add({
  id: 'secret-in-json-message',
  message: `config rejected: {"clientId":"shop-web","secret":"${jsonSecret}","retries":3}`,
  secrets: [jsonSecret],
  keep: ['"clientId":"shop-web"', '"retries":3'],
});
const dd = rand(HEX, 32);
add({
  id: 'datadog-api-key-env',
  message: `dd-trace: DD_API_KEY=${dd} rejected (403 Forbidden)`,
  secrets: [dd],
  keep: ['(403 Forbidden)'],
});
const azOpenai = rand(HEX, 32);
add({
  id: 'azure-openai-api-key-header',
  route: 'POST /api/assist',
  name: 'APIError',
  message: '401 Access denied due to invalid subscription key',
  props: { headers: { 'api-key': azOpenai, 'content-type': 'application/json' } },
  secrets: [azOpenai],
  keep: ['401 Access denied due to invalid subscription key'],
});
const eth = `0x${rand(HEX, 64)}`;
add({
  id: 'wallet-private-key-props',
  route: 'POST /api/payouts',
  message: 'insufficient funds for gas * price + value',
  props: { code: 'INSUFFICIENT_FUNDS', wallet: { address: '0x52908400098527886E0F7030069857D2E4169EE7', privateKey: eth } },
  secrets: [eth],
  keep: ['INSUFFICIENT_FUNDS', '0x52908400098527886E0F7030069857D2E4169EE7'],
});
const qsClientSecret = rand(URLSAFE, 32);
add({
  id: 'client-secret-in-query',
  route: 'POST /auth/token',
  message: `POST https://login.example.com/oauth2/token?client_id=shop&client_secret=${qsClientSecret} 400`,
  secrets: [qsClientSecret],
  keep: ['client_id=shop'],
});
const cliPw = rand(ALNUM, 15);
add({
  id: 'password-cli-argument',
  message: `spawn mysqldump --user=root --password=${cliPw} --single-transaction shop ENOENT`,
  secrets: [cliPw],
  keep: ['--user=root', '--single-transaction shop ENOENT'],
});
const drf = rand(HEX, 40);
add({
  id: 'token-scheme-header',
  route: 'GET /api/catalog',
  message: `catalog API 401 with Authorization: Token ${drf}`,
  secrets: [drf],
  keep: ['catalog API 401 with Authorization: Token '],
});

// Innocent text that looks close to a secret and must survive untouched.
add({
  id: 'lookalike-keyboard-primary-key',
  route: 'POST /api/settings',
  message: "invalid keyboard layout 'de-neo' for primaryKey user_id",
  props: { keyboard: 'de-neo', primaryKey: 'user_id', tokenCount: 512 },
  secrets: [],
  keep: ["invalid keyboard layout 'de-neo' for primaryKey user_id", "keyboard: 'de-neo'", "primaryKey: 'user_id'", 'tokenCount: 512'],
});
add({
  id: 'lookalike-token-401',
  route: 'GET /api/profile',
  message: 'cannot fetch token: 401 Unauthorized',
  secrets: [],
  keep: ['cannot fetch token: 401 Unauthorized'],
});
add({
  id: 'lookalike-ids-and-status',
  route: 'GET /api/orders/64b7f3a2c9e1d45f8a0b1c2d',
  message: 'order 64b7f3a2c9e1d45f8a0b1c2d not found (status 404, request 8c1e4b7a-2d3f-4e5a-9b6c-7d8e9f0a1b2c)',
  secrets: [],
  keep: ['order 64b7f3a2c9e1d45f8a0b1c2d not found (status 404, request 8c1e4b7a-2d3f-4e5a-9b6c-7d8e9f0a1b2c)', '/api/orders/64b7f3a2c9e1d45f8a0b1c2d'],
});
add({
  id: 'lookalike-frames-and-modules',
  route: 'POST /api/auth/password-reset',
  name: 'TypeError',
  message: "Cannot read properties of undefined (reading 'token') in PasswordResetController",
  props: { passwordMinLength: 12, SESSION_TIMEOUT: 30, tokenizer: 'wordpiece', author: 'bob' },
  secrets: [],
  keep: ["(reading 'token') in PasswordResetController", 'passwordMinLength: 12', 'SESSION_TIMEOUT: 30', "tokenizer: 'wordpiece'", "author: 'bob'", '/api/auth/password-reset'],
});
add({
  id: 'lookalike-words',
  route: 'POST /api/session',
  message: 'Password reset requested but the token expired; session ended for user 42',
  secrets: [],
  keep: ['Password reset requested but the token expired; session ended for user 42'],
});

// --- writers ---------------------------------------------------------------------------

// A real subclass per error name, as libraries define them, so stacks and util.inspect
// print the name the way they do in production.
const classes = {};
function errorOf(c) {
  if (!classes[c.name]) {
    classes[c.name] = { [c.name]: class extends Error {} }[c.name];
    classes[c.name].prototype.name = c.name;
  }
  const e = c.name === 'Error' ? new Error(c.message) : new classes[c.name](c.message);
  if (c.props) Object.assign(e, c.props);
  e.stack = deployPaths(e.stack);
  return e;
}
function routeOf(c) {
  const [method, url] = c.route.split(' ');
  return { method, url };
}

// Express-style text log: an "ERROR METHOD URL" line, then console.error(err).
const text = [];
for (const c of cases) {
  const err = errorOf(c);
  text.push(`ERROR ${c.route}`);
  text.push(deployPaths(util.inspect(err)));
  text.push(`INFO ${c.route.split(' ')[0]} /api/health 200 3ms`);
}
fs.writeFileSync(path.join(out, 'text.log'), text.join('\n') + '\n');

// Each JSON logger as the demo service configures it, writing to a synchronous file stream.
const fixedTime = Date.UTC(2026, 10, 26, 2, 7, 29);
// Synchronous on purpose: every line is on disk, in order, before the script exits.
function sink(name) {
  const fd = fs.openSync(path.join(out, name), 'w');
  const write = (s) => fs.writeSync(fd, deployPaths(String(s)));
  const stream = new Writable({
    write(chunk, _encoding, done) {
      write(chunk);
      done();
    },
  });
  return { write, stream };
}

const pino = require('pino');
{
  const { write } = sink('pino.log');
  const log = pino(
    { name: 'pa', base: { pid: 4242, hostname: 'prod-1' }, timestamp: () => `,"time":${fixedTime}` },
    { write },
  );
  for (const c of cases) log.error({ err: errorOf(c), req: routeOf(c) }, 'request failed');
}

const winston = require('winston');
{
  const { stream } = sink('winston.log');
  const { combine, errors, json } = winston.format;
  const log = winston.createLogger({
    level: 'info',
    defaultMeta: { service: 'pa', timestamp: new Date(fixedTime).toISOString() },
    format: combine(errors({ stack: true }), json()),
    transports: [new winston.transports.Stream({ stream })],
  });
  for (const c of cases) {
    const { method, url } = routeOf(c);
    log.error({ message: errorOf(c), method, url });
  }
}

const bunyan = require('bunyan');
{
  const { write } = sink('bunyan.log');
  const log = bunyan.createLogger({
    name: 'pa',
    hostname: 'prod-1',
    pid: 4242,
    serializers: bunyan.stdSerializers,
    streams: [{ level: 'info', stream: { write } }],
  });
  for (const c of cases) log.error({ err: errorOf(c), req: routeOf(c), time: new Date(fixedTime) }, 'request failed');
}

fs.writeFileSync(
  path.join(out, 'cases.json'),
  JSON.stringify(
    cases.map(({ id, route, secrets, keep, env }) => ({ id, route, secrets, keep, env: env || {} })),
    null,
    1,
  ) + '\n',
);
process.stdout.write(`${cases.length} cases, ${cases.reduce((n, c) => n + c.secrets.length, 0)} secrets\n`);
