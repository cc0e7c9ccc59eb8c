/*
 * headstage.c: a minimal headstage side of the spikeline wire protocol,
 * written from docs/protocol.md alone, in portable C99. TestCReference
 * (device/wire_c_test.go) compiles it with the system C compiler and checks
 * what it writes with the Go decoder.
 *
 * It reads command frames from stdin and answers each with a reply frame.
 * In raw mode (the default) it then writes NFRAMES data frames of NCH
 * channels x NS samples whose sample t of channel c is pattern(t, c). After
 * set_mode (version 2) it writes a settings frame and V2FRAMES frames of
 * V2NS samples of a synthetic neural signal (signal()) in that mode:
 * compressed, spike events or features. Everything goes to stdout.
 *
 * Version 2 is written for a small microcontroller: integer arithmetic
 * only (the float gain is a constant), no allocation, fixed buffers.
 * TestCReferenceV2 checks its frames byte for byte against the Go encoder
 * (device.Compressor, device.Detector, device.AppendSpikes...).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NCH 3
#define NS 4
#define NFRAMES 5
#define RATE 30000u
#define FIRST 1000u

/* crc32c_update continues a CRC-32C: start with crc = 0 for a new message. */
uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1u));
    }
    return ~crc;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int16_t pattern(uint64_t t, int c) { return (int16_t)(t * 7u + c * 1000u - 500u); }

/* send_frame writes a 36-byte header (fields 12..31 from h), the payload
 * and the frame CRC, computing both CRCs as the document says. Types 1-3
 * are version 1, types 4-7 version 2. */
static void send_frame(uint8_t type, uint16_t flags, uint8_t h[36], const uint8_t *payload, uint32_t n) {
    memcpy(h, "\xA5\x5A\xC3\x3C", 4);
    h[4] = type >= 4 ? 2 : 1;
    h[5] = type;
    put16(h + 6, flags);
    put32(h + 8, n);
    uint32_t crc = crc32c_update(0, h, 32);
    put32(h + 32, crc);
    crc = crc32c_update(crc, h + 32, 4);
    crc = crc32c_update(crc, payload, n);
    uint8_t t[4];
    put32(t, crc);
    fwrite(h, 1, 36, stdout);
    fwrite(payload, 1, n, stdout);
    fwrite(t, 1, 4, stdout);
}

static uint64_t counter = FIRST;

static void reply(const uint8_t *cmd, uint32_t n) {
    uint8_t h[36] = {0}, p[32 + 16];
    const char *msg = "c-ref";
    uint8_t op = cmd[4];
    memset(p, 0, sizeof p);
    memcpy(p, cmd, 4);             /* seq */
    p[4] = op;
    p[5] = (op >= 1 && op <= 11) ? 0 : 2; /* ok, or unsupported */
    put16(p + 6, (uint16_t)strlen(msg));
    if (op == 5 && n == 16)
        memcpy(p + 8, cmd + 8, 8); /* ping time, echoed */
    put64(p + 16, counter);
    put32(p + 24, RATE);
    put16(p + 28, NCH);
    memcpy(p + 32, msg, strlen(msg));
    send_frame(3, 0, h, p, 32 + (uint32_t)strlen(msg));
}

/* ---- Version 2: modes, on-device detection, compressed frames ---------- */

/* Right shifts of negative numbers are implementation-defined in C99:
 * these floor, as the document's ">>" does. Left shifts of negative
 * numbers are multiplications. */
static int32_t asr32(int32_t x, unsigned s) { return x >= 0 ? x >> s : ~(~x >> s); }
static int64_t asr64(int64_t x, unsigned s) { return x >= 0 ? x >> s : ~(~x >> s); }

#define V2NS 30         /* samples per frame */
#define V2FRAMES 60     /* frames sent after set_mode */
#define MAXLEVELS 4
#define RING 256        /* detection ring of y per channel (> 2*127+1) */
#define MAXVALUES (NCH * V2NS)

/* settings: what the host set by commands (docs/protocol.md, "Settings
 * frames"); defaults for 30 kHz. */
static struct {
    uint8_t mode, filter, pre, post, align, snippets;
    uint16_t dead, bin;
    uint8_t levels, countbits;
    int16_t thr[MAXLEVELS][NCH];
    uint8_t tenths[MAXLEVELS]; /* the sigma multiple each level stands for, x10 */
} st = {0, 5, 15, 30, 12, 1, 30, 600, 1, 4, {{0}}, {0}};

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* apply changes the settings as a command asks (the test sends valid ones). */
static void apply(const uint8_t *cmd, uint32_t n) {
    const uint8_t *a = cmd + 8;
    switch (cmd[4]) {
    case 8: /* set_mode */
        if (n == 12 && a[0] <= 3)
            st.mode = a[0];
        break;
    case 9: /* set_thresholds */
        if (n >= 12 && a[0] < st.levels && get16(a + 2) == NCH && n == 12 + 2u * NCH) {
            for (int c = 0; c < NCH; c++)
                st.thr[a[0]][c] = (int16_t)get16(a + 4 + 2 * c);
            st.tenths[a[0]] = a[1];
        }
        break;
    case 10: /* set_snippet */
        if (n == 12 && a[0] <= 127 && a[1] <= 127 && a[1] >= st.align) {
            st.pre = a[0], st.post = a[1], st.snippets = !(a[2] & 1);
            if (st.dead < st.post)
                st.dead = st.post;
        }
        break;
    case 11: /* set_features */
        if (n == 12 && get16(a) >= 1 && a[2] >= 1 && a[2] <= MAXLEVELS && (a[3] == 2 || a[3] == 4 || a[3] == 8)) {
            for (int l = st.levels; l < a[2]; l++) {
                for (int c = 0; c < NCH; c++)
                    st.thr[l][c] = 0;
                st.tenths[l] = 0;
            }
            st.bin = get16(a), st.levels = a[2], st.countbits = a[3];
        }
        break;
    }
}

/* signal is the synthetic recording of the version-2 modes: per channel a
 * DC offset, a slow triangle (the "LFP"), noise from a linear congruential
 * generator (the sum of two uniforms) and a spike every 250-odd samples.
 * Samples are drawn time-major, so TestCReferenceV2 draws the same ones. */
static uint32_t lcg = 12345u;
static int16_t signal_at(uint64_t t, int c) {
    static const int16_t dc[NCH] = {-1500, 300, 2500};
    static const int16_t shape[11] = {-10, -40, -90, -100, -70, -20, 20, 35, 30, 20, 10};
    int32_t tri = (int32_t)(t % 3000u);
    tri = tri < 1500 ? tri - 750 : 2250 - tri; /* -750..750 */
    lcg = lcg * 1664525u + 1013904223u;
    int32_t u1 = (int32_t)(lcg >> 24);
    lcg = lcg * 1664525u + 1013904223u;
    int32_t u2 = (int32_t)(lcg >> 24);
    int32_t v = dc[c] + tri / 2 + (u1 + u2 - 255) / 3;
    uint32_t ph = (uint32_t)((t + 91u * (uint64_t)c) % 257u);
    if (ph < 11)
        v += shape[ph] * (6 + c) ;
    return (int16_t)v;
}

/* Bit writer, least significant bit first. */
static uint8_t out[1 << 16];
static uint32_t outn;    /* bytes */
static uint64_t bacc;
static unsigned bn;
static void bits(uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        bacc |= ((v >> i) & 1u) << bn;
        if (++bn == 8) {
            out[outn++] = (uint8_t)bacc;
            bacc = 0, bn = 0;
        }
    }
}
static void bits_flush(void) {
    if (bn > 0)
        out[outn++] = (uint8_t)bacc;
    bacc = 0, bn = 0;
}

/* Rice codes: q = u >> k in unary (zeros, a one), then k low bits; a
 * quotient of 24 or more escapes: 24 zeros, a one and u in 17 bits. */
static unsigned rice_len(uint32_t u, unsigned k) {
    uint32_t q = u >> k;
    return q < 24 ? q + 1 + k : 41;
}
static void rice(uint32_t u, unsigned k) {
    uint32_t q = u >> k;
    if (q < 24) {
        bits(0, q), bits(1, 1), bits(u, k);
    } else {
        bits(0, 24), bits(1, 1), bits(u, 17);
    }
}
static void rice_split(const uint32_t *u, int n, unsigned k) {
    for (int i = 0; i < n; i++) {
        uint32_t q = u[i] >> k;
        bits(0, q < 24 ? q : 24), bits(1, 1);
    }
    for (int i = 0; i < n; i++)
        bits(u[i], (u[i] >> k) < 24 ? k : 17);
}
static uint32_t cost(const uint32_t *u, int n, unsigned k) {
    uint32_t c = 0;
    for (int i = 0; i < n; i++)
        c += rice_len(u[i], k);
    return c;
}
static unsigned bitlen64(uint64_t v) {
    unsigned n = 0;
    while (v) v >>= 1, n++;
    return n;
}
/* rice_param: the best of k0-1, k0, k0+1, k0 = bitlen(mean)-1. */
static unsigned rice_param(const uint32_t *u, int n, uint32_t *bits_out) {
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += u[i];
    uint64_t mean = n ? sum / (uint64_t)n : 0;
    int k0 = mean ? (int)bitlen64(mean) - 1 : 0;
    if (k0 > 16) k0 = 16;
    int lo = k0 > 0 ? k0 - 1 : 0, hi = k0 < 16 ? k0 + 1 : 16;
    unsigned best = (unsigned)lo;
    uint32_t bc = cost(u, n, (unsigned)lo);
    for (int k = lo + 1; k <= hi; k++) {
        uint32_t c = cost(u, n, (unsigned)k);
        if (c < bc) best = (unsigned)k, bc = c;
    }
    *bits_out = bc;
    return best;
}
static uint32_t side(int k, int prev) {
    int d = k - prev;
    return d == 0 ? 1 : (d == 1 || d == -1) ? 3 : 7;
}
static uint32_t zigzag(int32_t v) { return ((uint32_t)v << 1) ^ (uint32_t)(v < 0 ? -1 : 0); }
static int64_t absv(int64_t v) { return v < 0 ? -v : v; }
static int32_t clamp16(int64_t v) { return v < -32768 ? -32768 : v > 32767 ? 32767 : (int32_t)v; }

/* The compressor's state: decayed autocorrelations of first differences
 * and the current order-4 predictor. */
#define ORDER 4
static int64_t lpc_acc[ORDER + 1];
static int16_t coef[ORDER];
static unsigned cshift;
static int have_lpc;

/* levinson: Levinson-Durbin recursion in Q24 with 1/1024 white noise
 * added, quantized to int16 with the largest shift (at most 14) that fits. */
static int levinson(void) {
    const int64_t one = (int64_t)1 << 24;
    int64_t rho[ORDER + 1], a[ORDER + 1] = {0}, tmp[ORDER + 1];
    if (lpc_acc[0] <= 0)
        return 0;
    unsigned sh = 0;
    while (asr64(lpc_acc[0], sh) >= ((int64_t)1 << 30))
        sh++;
    int64_t r0 = asr64(lpc_acc[0], sh);
    for (int i = 0; i <= ORDER; i++)
        rho[i] = asr64(lpc_acc[i], sh) * one / r0;
    rho[0] += asr64(rho[0], 10);
    int64_t e = rho[0];
    for (int m = 1; m <= ORDER; m++) {
        int64_t acc = rho[m];
        for (int i = 1; i < m; i++)
            acc += asr64(a[i] * rho[m - i], 24);
        int64_t k = -(acc * one) / e;
        if (k >= one || k <= -one)
            break;
        for (int i = 1; i < m; i++)
            tmp[i] = a[i] + asr64(k * a[m - i], 24);
        for (int i = 1; i < m; i++)
            a[i] = tmp[i];
        a[m] = k;
        e = asr64(e * (one - asr64(k * k, 24)), 24);
        if (e <= 0)
            break;
    }
    int64_t big = 0;
    for (int i = 1; i <= ORDER; i++)
        if (absv(a[i]) > big) big = absv(a[i]);
    int s = 14;
    while (s > 0 && asr64(big + ((int64_t)1 << (23 - s)), (unsigned)(24 - s)) > 32767)
        s--;
    if (asr64(big + ((int64_t)1 << (23 - s)), (unsigned)(24 - s)) > 32767)
        return 0;
    for (int i = 1; i <= ORDER; i++)
        coef[i - 1] = (int16_t)asr64(-a[i] + ((int64_t)1 << (23 - s)), (unsigned)(24 - s));
    cshift = (unsigned)s;
    return 1;
}

/* compress writes the payload of one compressed frame of x (time-major,
 * NCH x V2NS) into out. */
static void compress(const int16_t *x) {
    static int32_t xc[MAXVALUES], ed[MAXVALUES], el[MAXVALUES];
    static uint32_t u[MAXVALUES], first[NCH];
    const int n = V2NS;
    for (int t = 0; t < n; t++)
        for (int c = 0; c < NCH; c++)
            xc[c * n + t] = x[t * NCH + c];
    /* LPC statistics (every channel: NCH <= 32), then the predictor. */
    int64_t r[ORDER + 1] = {0};
    for (int c = 0; c < NCH; c++) {
        const int32_t *y = xc + c * n;
        for (int t = 1; t < n; t++) {
            int64_t d = (int64_t)y[t] - y[t - 1];
            for (int i = 0; i <= ORDER && t - i >= 1; i++)
                r[i] += d * ((int64_t)y[t - i] - y[t - i - 1]);
        }
    }
    for (int i = 0; i <= ORDER; i++)
        lpc_acc[i] += r[i] - asr64(lpc_acc[i], 3);
    have_lpc = levinson();
    int q = have_lpc ? ORDER : 0;
    uint64_t s_none = 0, s_prev = 0, s_lpc = 0;
    for (int c = 0; c < NCH; c++) {
        const int32_t *y = xc + c * n;
        int32_t *e1 = ed + c * n, *e2 = el + c * n;
        e1[0] = e2[0] = y[0];
        s_none += (uint64_t)absv(y[0]), s_prev += (uint64_t)absv(y[0]), s_lpc += (uint64_t)absv(y[0]);
        for (int t = 1; t < n; t++) {
            int32_t d = y[t] - y[t - 1];
            s_none += (uint64_t)absv(y[t]);
            s_prev += (uint64_t)absv(d);
            e1[t] = d;
            if (q == 0)
                continue;
            if (t <= q) {
                e2[t] = d, s_lpc += (uint64_t)absv(d);
                continue;
            }
            int64_t sum = 0;
            for (int i = 0; i < q; i++)
                sum += (int64_t)coef[i] * ((int64_t)y[t - i - 1] - y[t - i - 2]);
            e2[t] = y[t] - clamp16((int64_t)y[t - 1] + asr64(sum, cshift));
            s_lpc += (uint64_t)absv(e2[t]);
        }
    }
    int pred = 0;
    const int32_t *src = xc;
    if (s_prev < s_none)
        pred = 1, src = ed;
    if (q > 0 && s_lpc < (s_none < s_prev ? s_none : s_prev))
        pred = 2, src = el;
    for (int i = 0; i < NCH * n; i++)
        u[i] = zigzag(src[i]);
    outn = 0;
    out[outn++] = (uint8_t)pred;
    if (pred == 2) {
        out[outn++] = (uint8_t)q, out[outn++] = (uint8_t)cshift;
        for (int i = 0; i < q; i++)
            put16(out + outn, (uint16_t)coef[i]), outn += 2;
    }
    int f = pred != 0;
    unsigned kf = 0;
    if (f) {
        uint32_t b;
        for (int c = 0; c < NCH; c++)
            first[c] = u[c * n];
        kf = rice_param(first, NCH, &b);
        bits(kf, 5);
    }
    int ks[NCH], prev = -1;
    for (int c = 0; c < NCH; c++) {
        const uint32_t *v = u + c * n + f;
        uint32_t cst;
        int k = (int)rice_param(v, n - f, &cst);
        if (prev >= 0 && k != prev) {
            uint32_t sd = side(k, prev);
            int alts[3] = {prev, prev - 1, prev + 1};
            for (int i = 0; i < 3; i++) {
                int alt = alts[i];
                if (alt < 0 || alt > 16 || alt == k)
                    continue;
                uint32_t ca = cost(v, n - f, (unsigned)alt);
                if (ca + side(alt, prev) < cst + sd)
                    k = alt, cst = ca, sd = side(alt, prev);
            }
        }
        ks[c] = k;
        if (prev < 0)
            bits((uint64_t)k, 5);
        else if (k == prev)
            bits(1, 1);
        else if (k == prev + 1)
            bits(0, 1), bits(1, 1), bits(0, 1);
        else if (k == prev - 1)
            bits(0, 1), bits(1, 1), bits(1, 1);
        else
            bits(0, 2), bits((uint64_t)k, 5);
        prev = k;
    }
    for (int c = 0; c < NCH; c++) {
        const uint32_t *v = u + c * n;
        if (f)
            rice(v[0], kf);
        rice_split(v + f, n - f, (unsigned)ks[c]);
    }
    bits_flush();
}

/* The detector (docs/protocol.md, "On-device detection"). */
static int32_t l1[NCH], l2[NCH], hp[NCH];
static int16_t yring[NCH][RING], yprev[NCH], extv[NCH];
static uint8_t dstate[NCH];
static uint64_t ext[NCH], search_end[NCH], dead_until[NCH], cnext[MAXLEVELS][NCH];
static uint64_t sumsq[NCH];
static uint8_t counts[MAXLEVELS][NCH];
static int started;
static uint64_t bin_from;
static int bin_ok;

/* Events completed and bins closed, waiting for their frame. */
#define MAXEVENTS 64
static struct { uint64_t e; int c; } events[MAXEVENTS];
static int nevents;
static uint8_t binbuf[8 * (NCH + MAXLEVELS * NCH)];
static int nbins;
static uint64_t bins_start;

static int beyond(int16_t y, int16_t t) { return t < 0 ? y < t : y > t; }

static void close_bin(uint64_t end) {
    if (bin_ok && end - bin_from == st.bin) {
        uint8_t *b = binbuf + nbins * (NCH + MAXLEVELS * NCH);
        if (nbins == 0)
            bins_start = bin_from;
        for (int c = 0; c < NCH; c++) {
            uint64_t v = sumsq[c] / st.bin;
            unsigned e = bitlen64(v);
            b[c] = v < 16 ? (uint8_t)v : e - 4 > 15 ? 255 : (uint8_t)((e - 4) << 4 | ((v >> (e - 5)) & 15));
        }
        for (int l = 0; l < st.levels; l++)
            for (int c = 0; c < NCH; c++)
                b[NCH + l * NCH + c] = counts[l][c];
        nbins++;
    }
    memset(sumsq, 0, sizeof sumsq);
    memset(counts, 0, sizeof counts);
    bin_from = end, bin_ok = 1;
}

static void detect(uint64_t first, const int16_t *x, int n) {
    if (!started) {
        started = 1;
        for (int c = 0; c < NCH; c++)
            l1[c] = x[c] * 256, l2[c] = 0, hp[c] = 0;
        bin_from = first, bin_ok = first % st.bin == 0;
    }
    for (int i = 0; i < n; i++) {
        uint64_t t = first + (uint64_t)i;
        for (int c = 0; c < NCH; c++) {
            int32_t xs = x[i * NCH + c] * 256;
            l1[c] += asr32(xs - l1[c], st.filter);
            int32_t h1 = xs - l1[c];
            l2[c] += asr32(h1 - l2[c], st.filter);
            int32_t h2 = h1 - l2[c];
            int16_t y = (int16_t)clamp16(asr32(h2 + hp[c], 9));
            hp[c] = h2;
            yring[c][t % RING] = y;
            sumsq[c] += (uint64_t)((int64_t)y * y);
            int16_t p = yprev[c];
            yprev[c] = y;
            for (int l = 0; l < st.levels; l++) {
                int16_t T = st.thr[l][c];
                if (T != 0 && beyond(y, T) && !beyond(p, T) && t >= cnext[l][c]) {
                    if (counts[l][c] < 255)
                        counts[l][c]++;
                    cnext[l][c] = t + st.dead;
                }
            }
            int16_t T = st.thr[0][c];
            if (T == 0)
                continue;
            if (dstate[c] == 0) {
                if (t >= dead_until[c] && beyond(y, T))
                    dstate[c] = 1, ext[c] = t, extv[c] = y, search_end[c] = t + st.align;
            } else if (dstate[c] == 1) {
                if ((T < 0 && y < extv[c]) || (T > 0 && y > extv[c]))
                    ext[c] = t, extv[c] = y;
            }
            if (dstate[c] == 1 && t == search_end[c])
                dstate[c] = 2;
            if (dstate[c] == 2 && t == ext[c] + st.post) {
                events[nevents].e = ext[c], events[nevents].c = c, nevents++;
                dstate[c] = 0;
                dead_until[c] = ext[c] + st.dead;
            }
        }
        if ((t + 1) % st.bin == 0)
            close_bin(t + 1);
    }
}

static void header(uint8_t h[36], uint16_t nch, uint16_t ns, uint64_t cnt) {
    memset(h, 0, 36);
    put16(h + 12, nch);
    put16(h + 14, ns);
    put32(h + 16, RATE);
    float gain = 0.195f;
    uint32_t g;
    memcpy(&g, &gain, 4);
    put32(h + 20, g);
    put64(h + 24, cnt);
}

static void send_settings(uint64_t cnt) {
    uint8_t h[36], p[16 + 2 * MAXLEVELS * NCH] = {0};
    header(h, NCH, 0, cnt);
    p[0] = st.mode, p[1] = st.filter, p[2] = st.pre, p[3] = st.post, p[4] = st.align, p[5] = st.snippets;
    put16(p + 6, st.dead), put16(p + 8, st.bin), p[10] = st.levels, p[11] = st.countbits;
    for (int l = 0; l < MAXLEVELS; l++)
        p[12 + l] = st.tenths[l];
    for (int l = 0; l < st.levels; l++)
        for (int c = 0; c < NCH; c++)
            put16(p + 16 + 2 * (l * NCH + c), (uint16_t)st.thr[l][c]);
    send_frame(7, 0, h, p, 16 + 2u * st.levels * NCH);
}

/* send_spikes writes the events completed in [cnt, cnt+V2NS). */
static void send_spikes(uint64_t cnt) {
    uint8_t h[36];
    header(h, NCH, V2NS, cnt);
    outn = 0;
    put16(out, (uint16_t)nevents);
    out[2] = st.pre, out[3] = st.post, out[4] = st.snippets, out[5] = out[6] = out[7] = 0;
    outn = 8;
    for (int i = 0; i < nevents; i++) {
        uint64_t e = events[i].e;
        int c = events[i].c;
        put16(out + outn, (uint16_t)c);
        put16(out + outn + 2, (uint16_t)(int16_t)((int64_t)e - (int64_t)cnt));
        outn += 4;
        if (!st.snippets)
            continue;
        int16_t lo = 0, hi = 0;
        for (int k = -(int)st.pre; k <= (int)st.post; k++) {
            int16_t v = yring[c][(e + (uint64_t)(int64_t)k) % RING];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        unsigned s = 0;
        while (asr32(hi, s) > 127 || asr32(lo, s) < -128)
            s++;
        out[outn++] = (uint8_t)s;
        for (int k = -(int)st.pre; k <= (int)st.post; k++)
            out[outn++] = (uint8_t)(int8_t)asr32(yring[c][(e + (uint64_t)(int64_t)k) % RING], s);
    }
    nevents = 0;
    send_frame(5, 0, h, out, outn);
}

/* send_features writes each closed bin in a frame of its own. */
static void send_features(void) {
    for (int b = 0; b < nbins; b++) {
        const uint8_t *src = binbuf + b * (NCH + MAXLEVELS * NCH);
        uint8_t h[36];
        header(h, NCH, st.bin, bins_start + (uint64_t)b * st.bin);
        outn = 0;
        put16(out, st.bin);
        out[2] = st.levels, out[3] = st.countbits, out[4] = out[5] = out[6] = out[7] = 0;
        outn = 8;
        memcpy(out + outn, src, NCH);
        outn += NCH;
        for (int i = 0; i < st.levels * NCH; i++) {
            unsigned top = (1u << st.countbits) - 1;
            bits(src[NCH + i] < top ? src[NCH + i] : top, st.countbits);
        }
        bits_flush();
        send_frame(6, 0, h, out, outn);
    }
    nbins = 0;
}

/* stream_v2 streams V2FRAMES frames of signal() in the mode set. */
static void stream_v2(void) {
    static int16_t x[MAXVALUES];
    send_settings(counter);
    for (int f = 0; f < V2FRAMES; f++) {
        for (int t = 0; t < V2NS; t++)
            for (int c = 0; c < NCH; c++)
                x[t * NCH + c] = signal_at(counter + (uint64_t)t, c);
        uint8_t h[36];
        switch (st.mode) {
        case 1:
            header(h, NCH, V2NS, counter);
            compress(x);
            send_frame(4, 0, h, out, outn);
            break;
        case 2:
            detect(counter, x, V2NS);
            send_spikes(counter);
            break;
        case 3:
            detect(counter, x, V2NS);
            send_features();
            break;
        }
        counter += V2NS;
    }
}

int main(void) {
    static uint8_t in[1 << 16];
    size_t len = fread(in, 1, sizeof in, stdin);
    /* Commands: scan for sync words, check both CRCs, answer each. */
    for (size_t i = 0; i + 40 <= len; i++) {
        if (memcmp(in + i, "\xA5\x5A\xC3\x3C", 4) != 0)
            continue;
        const uint8_t *h = in + i;
        uint32_t hcrc = crc32c_update(0, h, 32);
        if (hcrc != get32(h + 32))
            continue;
        uint32_t n = get32(h + 8);
        if (n > len - i - 40)
            continue;
        if (crc32c_update(hcrc, h + 32, 4 + n) != get32(h + 36 + n))
            continue;
        if (h[4] == 1 && h[5] == 2 && n >= 8) {
            apply(h + 36, n);
            reply(h + 36, n);
        }
        i += 40 + n - 1;
    }
    if (st.mode != 0) {
        stream_v2();
        return 0;
    }
    /* Data. */
    for (int f = 0; f < NFRAMES; f++) {
        uint8_t h[36] = {0}, p[2 * NCH * NS];
        put16(h + 12, NCH);
        put16(h + 14, NS);
        put32(h + 16, RATE);
        float gain = 0.195f;
        uint32_t g;
        memcpy(&g, &gain, 4);
        put32(h + 20, g);
        put64(h + 24, counter);
        for (int t = 0; t < NS; t++)
            for (int c = 0; c < NCH; c++)
                put16(p + 2 * (t * NCH + c), (uint16_t)pattern(counter + t, c));
        send_frame(1, 0, h, p, sizeof p);
        counter += NS;
    }
    return 0;
}
