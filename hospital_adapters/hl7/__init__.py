"""HL7 v2.5 over MLLP: DFT^P03 in, ACK with the split (or ERR segments) out.

Modules: ``mllp`` (framing), ``dft`` (reading a DFT^P03 into a visit), ``ack`` (building the answer),
``service`` (one message in, one answer out; no sockets), ``adapter`` (the TCP listener).
"""
