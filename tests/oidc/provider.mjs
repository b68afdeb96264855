// The OpenID Connect provider the single sign-on end-to-end test signs in at: the pinned,
// OpenID-certified `oidc-provider` (package.json), configured here and nothing more. Its own
// development pages (a sign-in form that takes any account name, then a consent page) are the
// user interface; no part of the protocol is written here.
//
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [HOST]
//
// Listens on HOST (default 127.0.0.1) and PORT, issuer `http://HOST:PORT`, with one confidential
// client (authorization code, PKCE required as for every client here). Accounts are named by
// their e-mail address; their claims come from ACCOUNTS below. Prints `listening ISSUER` once
// ready, and `redirect URL` for every answer that sends the browser back to the client (the
// test replays one), then serves until killed.

import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, host = '127.0.0.1'] = process.argv.slice(2);
if (!port || !clientId || !clientSecret || !redirectUri) {
  console.error('usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [HOST]');
  process.exit(2);
}

/** Test accounts: the account id is the e-mail address. */
const ACCOUNTS = {
  'alice@example.com': { email: 'alice@example.com', email_verified: true, name: 'Alice' },
  'carol@example.com': { email: 'carol@example.com', email_verified: true, name: 'Carol' },
  'mallory@example.com': { email: 'mallory@example.com', email_verified: true, name: 'Mallory' },
  'unverified@example.com': { email: 'alice@example.com', email_verified: false, name: 'Not Alice' },
};

const issuer = `http://${host}:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Fixed cookie keys: a test provider, its sessions live as long as the test.
  cookies: { keys: ['replay-e2e-oidc-test-provider-cookie-key'] },
  async findAccount(_ctx, id) {
    const claims = ACCOUNTS[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});
// The test runs over plain HTTP on the loopback.
provider.proxy = false;

// Notes each redirect back to the client (the test reads one to replay it).
provider.use(async (ctx, next) => {
  await next();
  const location = ctx.response.get('location');
  if (location && location.startsWith(redirectUri)) console.log(`redirect ${location}`);
});

provider.listen(Number(port), host, () => console.log(`listening ${issuer}`));
