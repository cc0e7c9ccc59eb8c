/*
 * headstage.c: a minimal headstage side of the spikeline wire protocol,
 * written from docs/protocol.md alone, in portable C99. TestCReference
 * (device/wire_c_test.go) compiles it with the system C compiler and checks
 * what it writes with the Go decoder.
 *
 * It reads command frames from stdin, answers each with a reply frame,
 * then writes NFRAMES data frames of NCH channels x NS samples whose sample
 * t of channel c is pattern(t, c). Everything goes to stdout.
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
 * and the frame CRC, computing both CRCs as the document says. */
static void send_frame(uint8_t type, uint16_t flags, uint8_t h[36], const uint8_t *payload, uint32_t n) {
    memcpy(h, "\xA5\x5A\xC3\x3C", 4);
    h[4] = 1;
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
    p[5] = (op >= 1 && op <= 7) ? 0 : 2; /* ok, or unsupported */
    put16(p + 6, (uint16_t)strlen(msg));
    if (op == 5 && n == 16)
        memcpy(p + 8, cmd + 8, 8); /* ping time, echoed */
    put64(p + 16, counter);
    put32(p + 24, RATE);
    put16(p + 28, NCH);
    memcpy(p + 32, msg, strlen(msg));
    send_frame(3, 0, h, p, 32 + (uint32_t)strlen(msg));
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
        if (h[4] == 1 && h[5] == 2 && n >= 8)
            reply(h + 36, n);
        i += 40 + n - 1;
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
