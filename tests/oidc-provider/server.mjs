// oidc-provider (OpenID Certified) on loopback for Lamplighter's sign-in tests.
//
// Configured as a Microsoft-like authority for a native public client: the
// endpoints under /oauth2/v2.0/ where Entra has them, PKCE (S256) required,
// loopback redirect URIs with any port (RFC 8252), the device flow
// (RFC 8628), refresh-token rotation and revocation (RFC 7009).
//
// The one thing replaced is the user: /interaction/<uid> signs in as
// ACCOUNT and consents at once, as a scripted browser would. Every protocol
// decision (codes, verifiers, replays, expiry) is oidc-provider's.
//
// Prints "listening <issuer>" on stdout once it accepts connections.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const CLIENT_ID = process.env.CLIENT_ID ?? 'lamplighter-test';
const ACCOUNT = process.env.ACCOUNT ?? 'mara@contoso.test';
const DEVICE_CODE_TTL = Number(process.env.DEVICE_CODE_TTL ?? 600);
// A confidential app that signs in with a certificate (client credentials,
// private_key_jwt): its public key as PEM, as the app registration holds it.
const APP_CLIENT_ID = process.env.APP_CLIENT_ID;
const APP_PUBLIC_KEY = process.env.APP_PUBLIC_KEY;
const APP_SCOPE = 'https://graph.microsoft.com/.default';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://localhost'],
    }, ...(APP_CLIENT_ID && APP_PUBLIC_KEY ? [{
      client_id: APP_CLIENT_ID,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: APP_SCOPE,
      jwks: { keys: [{ ...crypto.createPublicKey(APP_PUBLIC_KEY).export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] },
    }] : [])],
    scopes: ['openid', 'offline_access', 'https://graph.microsoft.com/Mail.ReadWrite', APP_SCOPE],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
    },
    routes: {
      authorization: '/oauth2/v2.0/authorize',
      token: '/oauth2/v2.0/token',
      device_authorization: '/oauth2/v2.0/devicecode',
      code_verification: '/devicelogin',
      revocation: '/oauth2/v2.0/revoke',
    },
    ttl: { DeviceCode: DEVICE_CODE_TTL, AuthorizationCode: 600, AccessToken: 3600, RefreshToken: 86400 },
    rotateRefreshToken: true,
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub, preferred_username: sub }) }),
    cookies: { keys: ['lamplighter-test-only-cookie-key'] },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    if (!req.url.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } }, { mergeWithLastSubmission: false });
        return;
      }
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const missing = details.prompt.details.missingOIDCScope;
      if (missing) grant.addOIDCScope(missing.join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err));
    }
  });
  console.log(`listening ${issuer}`);
});
