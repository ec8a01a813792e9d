// The sign form's token for a petition page that nginx serves from its microcache.
// Installed as /etc/nginx/samleng/samleng-form.js; samleng.conf imports it.
//
// The page nginx keeps carries a slot instead of a token; sub_filter (samleng-app.conf) puts
// this token there for each visitor, so that no two visitors ever share one. The token is
// the app's own (service/signing/formtoken.py, issue_form_token): issue time in Unix seconds,
// a nonce of 9 random bytes, and HMAC-SHA256 under the form-token key truncated to 18 bytes;
// nonce and MAC in base64url, 12 and 24 characters (whole groups of 3 bytes: no padding).
// The key comes from samleng-form-key.conf (`samleng keys nginx-form` writes it).

import crypto from 'crypto';

function token(r) {
    var key = r.variables.samleng_form_key;
    var slug = r.variables.samleng_slug;
    if (!key || !slug) {
        // Outside the petition-page location: nothing to fill, and no token to give away.
        return '';
    }
    var issued = Math.floor(Date.now() / 1000);
    // $request_id is 16 bytes from nginx's CSPRNG, fresh for every request.
    var nonce = Buffer.from(r.variables.request_id, 'hex').slice(0, 9).toString('base64url');
    var mac = crypto.createHmac('sha256', Buffer.from(key, 'hex'))
        .update('samleng-form/v2\n' + slug + '\n' + issued + '\n' + nonce)
        .digest()
        .slice(0, 18)
        .toString('base64url');
    return issued + '.' + nonce + '.' + mac;
}

export default {token};
