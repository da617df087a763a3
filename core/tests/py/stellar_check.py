#!/usr/bin/env python3
"""Second, independent Stellar implementation (Python stellar-sdk) for pi-payments' tests.

Commands (arguments are positional; output is one JSON object on stdout):
  probe
      -> {"stellar_sdk": version}; exit 3 if stellar_sdk is not importable.
  decode PASSPHRASE ENVELOPE_B64
      -> {"hash", "source", "sequence", "fee", "memo_type", "memo", "min_time", "max_time",
          "operations": [{"type", "source", "destination", "asset_native", "amount_stroops"}],
          "signatures": [{"hint"}], "valid_signers": [G...]}
         valid_signers = the tx source and op sources whose signature verifies over the hash.
  build PASSPHRASE SOURCE_SEED DESTINATION AMOUNT MEMO SEQUENCE FEE_PER_OP MAX_TIME [OP_SOURCE_SEED]
      -> {"hash", "envelope"}: a payment signed by SOURCE_SEED (and OP_SOURCE_SEED, which then
         becomes the payment op's source), with tx sequence number SEQUENCE.
"""
import json
import sys
from decimal import Decimal

try:
    import stellar_sdk
    from stellar_sdk import (Account, Asset, Keypair, TransactionBuilder,
                             TransactionEnvelope)
    from stellar_sdk.exceptions import BadSignatureError
except ImportError as e:  # the Rust side turns this into a skip (or a failure under CI)
    print(json.dumps({"error": f"stellar_sdk not importable: {e}"}))
    sys.exit(3)

STROOPS = Decimal(10_000_000)


def account_id(muxed):
    return None if muxed is None else muxed.account_id


def to_stroops(amount):
    value = Decimal(str(amount)) * STROOPS
    if value != value.to_integral_value():
        raise ValueError(f"amount {amount} has more than 7 decimals")
    return int(value)


def decode(passphrase, envelope_b64):
    te = TransactionEnvelope.from_xdr(envelope_b64, passphrase)
    tx = te.transaction
    tx_hash = te.hash()
    ops = []
    required = [tx.source.account_id]
    for op in tx.operations:
        src = account_id(op.source)
        if src and src not in required:
            required.append(src)
        name = type(op).__name__
        entry = {"type": name, "source": src}
        if name == "Payment":
            entry.update(destination=op.destination.account_id,
                         asset_native=op.asset.is_native(),
                         amount_stroops=to_stroops(op.amount))
        elif name == "CreateAccount":
            entry.update(destination=op.destination, asset_native=True,
                         amount_stroops=to_stroops(op.starting_balance))
        ops.append(entry)
    valid = []
    for key in required:
        kp = Keypair.from_public_key(key)
        for sig in te.signatures:
            if sig.signature_hint != kp.signature_hint():
                continue
            try:
                kp.verify(tx_hash, sig.signature)
            except BadSignatureError:
                continue
            valid.append(key)
            break
    memo = tx.memo
    memo_type = type(memo).__name__
    memo_value = None
    if memo_type == "TextMemo":
        memo_value = memo.memo_text.decode("utf-8", "replace")
    tb = tx.preconditions.time_bounds if tx.preconditions else None
    return {
        "hash": te.hash_hex(),
        "source": tx.source.account_id,
        "sequence": tx.sequence,
        "fee": tx.fee,
        "memo_type": memo_type,
        "memo": memo_value,
        "min_time": tb.min_time if tb else None,
        "max_time": tb.max_time if tb else None,
        "operations": ops,
        "signatures": [{"hint": sig.signature_hint.hex()} for sig in te.signatures],
        "valid_signers": valid,
    }


def build(passphrase, source_seed, destination, amount, memo, sequence, fee, max_time,
          op_source_seed=None):
    source = Keypair.from_secret(source_seed)
    op_source = Keypair.from_secret(op_source_seed) if op_source_seed else None
    # TransactionBuilder uses account.sequence + 1.
    account = Account(source.public_key, int(sequence) - 1)
    builder = TransactionBuilder(account, network_passphrase=passphrase, base_fee=int(fee))
    builder.append_payment_op(destination, Asset.native(), amount,
                              source=op_source.public_key if op_source else None)
    builder.add_text_memo(memo)
    builder.add_time_bounds(0, int(max_time))
    te = builder.build()
    te.sign(source)
    if op_source:
        te.sign(op_source)
    return {"hash": te.hash_hex(), "envelope": te.to_xdr()}


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "probe":
        out = {"stellar_sdk": stellar_sdk.__version__}
    elif cmd == "decode":
        out = decode(*args)
    elif cmd == "build":
        out = build(*args)
    else:
        raise SystemExit(f"unknown command {cmd!r}\n{__doc__}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
