"""Signs and verifies A2A agent cards with the Python a2a-sdk 1.x's own card signing
(a2a.utils.signing), the card read as its client reads one (parse_agent_card).

Usage (python: the a2a-python-v1 venv of the tool cache):
  python cardsig.py verify PUBLIC_KEY.pem CARD.json...
      one line per card: {"card": path, "ok": true} or {"card": path, "ok": false, "error": ...}
  python cardsig.py sign PRIVATE_KEY.pem HEADER.json IN.json OUT.json
      OUT is IN with the SDK's signature added; HEADER is the JWS protected header (alg, kid,
      typ, and any other member, such as x5c).
"""
import copy
import json
import sys

from a2a.client.card_resolver import parse_agent_card
from a2a.utils.signing import create_agent_card_signer, create_signature_verifier
from google.protobuf.json_format import MessageToDict


def read(path):
    with open(path) as f:
        return f.read()


def verify(public_key, cards):
    verifier = create_signature_verifier(lambda kid, jku: public_key, ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'])
    for path in cards:
        try:
            verifier(parse_agent_card(json.loads(read(path))))
            print(json.dumps({'card': path, 'ok': True}), flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, per card
            print(json.dumps({'card': path, 'ok': False, 'error': f'{type(e).__name__}: {e}'}), flush=True)


def sign(private_key, header, src, dst):
    card = json.loads(read(src))
    # (parse_agent_card rewrites the dict it is given.)
    signed = create_agent_card_signer(private_key, header)(parse_agent_card(copy.deepcopy(card)))
    # The card as it was (members the 1.0 schema does not know included), with the signature.
    card['signatures'] = MessageToDict(signed)['signatures']
    with open(dst, 'w') as f:
        json.dump(card, f)
    print(json.dumps({'card': dst, 'ok': True}), flush=True)


if __name__ == '__main__':
    mode, key = sys.argv[1], read(sys.argv[2])
    if mode == 'verify':
        verify(key, sys.argv[3:])
    elif mode == 'sign':
        sign(key, json.loads(read(sys.argv[3])), sys.argv[4], sys.argv[5])
    else:
        sys.exit(f'unknown mode {mode}')
