/**
 * `nea keygen` (alias `genkey`) and `nea pubkey`, compatible with `wg genkey` / `wg pubkey`.
 */
import { readFileSync } from 'node:fs';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from '../dataplane/wg/crypto.js';
import { register } from './main.js';

for (const word of ['keygen', 'genkey']) {
  register({
    path: [word],
    summary: `print a new private key (base64)${word === 'genkey' ? ', as `wg genkey`' : ''}`,
    usage: `nea ${word}`,
    run() {
      console.log(encodeKey(generatePrivateKey()));
      return Promise.resolve(0);
    },
  });
}

register({
  path: ['pubkey'],
  summary: 'read a private key on stdin, print its public key',
  usage: 'nea keygen | nea pubkey',
  run() {
    console.log(encodeKey(publicKeyOf(decodeKey(readFileSync(0, 'utf8').trim()))));
    return Promise.resolve(0);
  },
});
