// A minimal DER TLV reader, used where exact raw bytes matter (a CA
// certificate's subject as the issuer of a new certificate, EC key points),
// so nothing is lost by a parse / re-serialize round trip.

export interface Tlv {
    tag: number;
    /** Offset of the tag byte within the buffer. */
    start: number;
    /** Offset of the first content byte. */
    contentStart: number;
    /** Offset just past the content. */
    end: number;
}

export function readTlv(buf: Uint8Array, offset: number): Tlv {
    if (offset + 2 > buf.length) {
        throw new Error("DER: truncated");
    }
    const tag = buf[offset];
    if ((tag & 0x1f) === 0x1f) {
        throw new Error("DER: high tag numbers are not supported");
    }
    let len = buf[offset + 1];
    let p = offset + 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4 || p + n > buf.length) {
            throw new Error("DER: bad length");
        }
        len = 0;
        for (let i = 0; i < n; i++) {
            len = len * 256 + buf[p + i];
        }
        p += n;
    }
    if (p + len > buf.length) {
        throw new Error("DER: content runs past the end");
    }
    return { tag, start: offset, contentStart: p, end: p + len };
}

/** The TLVs directly inside a constructed TLV. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
    const out: Tlv[] = [];
    let p = parent.contentStart;
    while (p < parent.end) {
        const t = readTlv(buf, p);
        out.push(t);
        p = t.end;
    }
    return out;
}

export function raw(buf: Uint8Array, t: Tlv): Buffer {
    return Buffer.from(buf.subarray(t.start, t.end));
}

export function content(buf: Uint8Array, t: Tlv): Buffer {
    return Buffer.from(buf.subarray(t.contentStart, t.end));
}
