"""Create validator keystores and deposit data with ethstaker-deposit (the staking deposit CLI's
maintained successor), as an operator would, for signward's interoperability tests.

usage: make_deposit_keystores.py OUT_DIR PASSWORD_FILE

Writes OUT_DIR/keystores/*.json (one scrypt and one pbkdf2 keystore) and OUT_DIR/deposit_data.json
(the deposit data ethstaker-deposit signed itself, which signward's DEPOSIT signature must equal).
"""
import json
import os
import sys
import time

from ethstaker_deposit.credentials import Credential
from ethstaker_deposit.settings import get_chain_setting

# A fixed, public test mnemonic (the BIP-39 "abandon ... about" vector); never use it for real funds.
MNEMONIC = "abandon " * 11 + "about"


def main() -> None:
    out, password_file = sys.argv[1], sys.argv[2]
    with open(password_file, encoding="utf-8") as f:
        password = f.read()
    folder = os.path.join(out, "keystores")
    os.makedirs(folder, exist_ok=True)
    chain = get_chain_setting("hoodi")
    deposits = []
    for index, use_pbkdf2 in ((0, False), (1, True)):
        cred = Credential(
            mnemonic=MNEMONIC,
            mnemonic_password="",
            index=index,
            amount=32 * 10**9,
            chain_setting=chain,
            hex_withdrawal_address="0x000000000000000000000000000000000000dEaD",
            use_pbkdf2=use_pbkdf2,
        )
        path = cred.save_signing_keystore(password, folder, time.time())
        os.chmod(path, 0o600)
        assert cred.verify_keystore(path, password)
        deposits.append(cred.deposit_datum_dict)
    with open(os.path.join(out, "deposit_data.json"), "w", encoding="utf-8") as f:
        json.dump(
            [
                {
                    k: (v.hex() if isinstance(v, bytes) else v)
                    for k, v in d.items()
                    if k in ("pubkey", "withdrawal_credentials", "amount", "signature", "fork_version")
                }
                for d in deposits
            ],
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
