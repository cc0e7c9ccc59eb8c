#!/usr/bin/env python3
"""Make the Intan .rhd/.rhs test files of device/intan, from Intan's
published format description ("RHD2000 / RHS2000 data file formats",
intantech.com, and Intan's own Python reader, load_intan_rhd_format /
load_intan_rhs_format) -- independently of spikeline's Go reader, which the
tests check against these files and against neo's IntanRawIO.

usage: make_intan.py OUTDIR

Every file carries amplifier data from amp(t, c) below (t the timestamp,
c the index of the amplifier channel among the enabled ones), and every
other signal type the format has, so that a reader that gets one size
wrong reads garbage.
"""
import os
import struct
import sys


def amp(t, c):
    """The raw uint16 of amplifier channel c at timestamp t."""
    return (t * 131 + c * 977 + 12345) % 65536


def qstring(s):
    """A Qt QString as QDataStream writes it: uint32 byte length (0xFFFFFFFF
    for a null string), then UTF-16LE code units."""
    if s is None:
        return struct.pack('<I', 0xFFFFFFFF)
    b = s.encode('utf-16-le')
    return struct.pack('<I', len(b)) + b


def channel(rhs, native, custom, order, sigtype, enabled, chip, board_stream):
    b = qstring(native) + qstring(custom)
    b += struct.pack('<hhhhh', order, order, sigtype, enabled, chip)
    if rhs:
        b += struct.pack('<h', 0)  # command stream
    b += struct.pack('<h', board_stream)
    b += struct.pack('<hhhh', 1, -70, 0, 0)  # spike scope trigger
    b += struct.pack('<ff', 1.25e5, -45.0)  # impedance magnitude, phase
    return b


def group(rhs, name, prefix, enabled, chans):
    """chans: list of (native name, signal type, enabled)."""
    namp = sum(1 for c in chans if c[1] == 0)
    b = qstring(name) + qstring(prefix) + struct.pack('<hhh', enabled, len(chans), namp)
    for i, (native, sigtype, en) in enumerate(chans):
        b += channel(rhs, native, native + '_custom', i, sigtype, en, i, 0)
    return b


def rhd(path, major, minor, groups, nblocks, t0=0, temp=0, board_mode=0, notch=0, gap_at=None):
    """Write an .rhd file. groups: list of (name, prefix, enabled, chans)."""
    n = 60 if major == 1 else 128
    h = struct.pack('<Ihh', 0xC6912702, major, minor)
    h += struct.pack('<f', 30000.0)
    h += struct.pack('<hffffff', 1, 1.0, 0.1, 7500.0, 1.0, 0.1, 7500.0)
    h += struct.pack('<h', notch)
    h += struct.pack('<ff', 1000.0, 1000.0)
    h += qstring('note one') + qstring('') + qstring(None)
    if major > 1 or minor >= 1:
        h += struct.pack('<h', temp)
    if major > 1 or minor >= 3:
        h += struct.pack('<h', board_mode)
    if major > 1:
        h += qstring('Hardware')
    h += struct.pack('<h', len(groups))
    enabled = {k: 0 for k in range(6)}
    for name, prefix, en, chans in groups:
        h += group(False, name, prefix, en, chans)
        if en:
            for c in chans:
                if c[2]:
                    enabled[c[1]] += 1
    signed = major > 1 or minor >= 2
    t = t0
    with open(path, 'wb') as f:
        f.write(h)
        for blk in range(nblocks):
            if gap_at is not None and blk == gap_at:
                t += 1000  # the controller lost 1000 samples
            ts = list(range(t, t + n))
            t += n
            f.write(struct.pack('<' + ('i' if signed else 'I') * n, *ts))
            for c in range(enabled[0]):
                f.write(struct.pack('<' + 'H' * n, *[amp(x, c) for x in ts]))
            for c in range(enabled[1]):  # aux inputs: one sample in four
                f.write(struct.pack('<' + 'H' * (n // 4), *[(x + 7 * c) % 65536 for x in ts[::4]]))
            for c in range(enabled[2]):  # supply voltage: one per block
                f.write(struct.pack('<H', 44000 + c))
            for c in range(temp):  # temperature sensors: one per block
                f.write(struct.pack('<h', 2500 + c))
            for c in range(enabled[3]):  # board ADC
                f.write(struct.pack('<' + 'H' * n, *[(x * 3 + c) % 65536 for x in ts]))
            if enabled[4]:
                f.write(struct.pack('<' + 'H' * n, *[x % 4 for x in ts]))
            if enabled[5]:
                f.write(struct.pack('<' + 'H' * n, *[x % 8 for x in ts]))


def rhs(path, major, minor, groups, nblocks, dc_saved, t0=0, notch=0):
    n = 128
    h = struct.pack('<Ihh', 0xD69127AC, major, minor)
    h += struct.pack('<f', 30000.0)
    h += struct.pack('<hffffffff', 1, 1.0, 0.1, 1000.0, 7500.0, 1.0, 0.1, 1000.0, 7500.0)
    h += struct.pack('<h', notch)
    h += struct.pack('<ff', 1000.0, 1000.0)
    h += struct.pack('<hh', 1, 0)  # amp settle mode, charge recovery mode
    h += struct.pack('<fff', 1e-6, 1e-6, 0.0)  # stim step, recovery limit, target voltage
    h += qstring('') + qstring('stim') + qstring('')
    h += struct.pack('<h', 1 if dc_saved else 0)
    h += struct.pack('<h', 14)  # board mode
    h += qstring('n/a')
    h += struct.pack('<h', len(groups))
    enabled = {k: 0 for k in range(7)}
    for name, prefix, en, chans in groups:
        h += group(True, name, prefix, en, chans)
        if en:
            for c in chans:
                if c[2]:
                    enabled[c[1]] += 1
    t = t0
    with open(path, 'wb') as f:
        f.write(h)
        for blk in range(nblocks):
            ts = list(range(t, t + n))
            t += n
            f.write(struct.pack('<' + 'i' * n, *ts))
            for c in range(enabled[0]):
                f.write(struct.pack('<' + 'H' * n, *[amp(x, c) for x in ts]))
            if dc_saved:
                for c in range(enabled[0]):
                    f.write(struct.pack('<' + 'H' * n, *[(512 + x + c) % 1024 for x in ts]))
            for c in range(enabled[0]):  # stimulation words
                f.write(struct.pack('<' + 'H' * n, *[0x0100 if x % 50 == 0 else 0 for x in ts]))
            for c in range(enabled[3]):
                f.write(struct.pack('<' + 'H' * n, *[(x * 5 + c) % 65536 for x in ts]))
            for c in range(enabled[4]):
                f.write(struct.pack('<' + 'H' * n, *[(x * 11 + c) % 65536 for x in ts]))
            if enabled[5]:
                f.write(struct.pack('<' + 'H' * n, *[x % 2 for x in ts]))
            if enabled[6]:
                f.write(struct.pack('<' + 'H' * n, *[x % 3 for x in ts]))


def port(prefix, namp, naux=0, nvdd=0, disabled=()):
    chans = [('%s-%03d' % (prefix, i), 0, i not in disabled) for i in range(namp)]
    chans += [('%s-AUX%d' % (prefix, i + 1), 1, True) for i in range(naux)]
    chans += [('%s-VDD%d' % (prefix, i + 1), 2, True) for i in range(nvdd)]
    return ('Port ' + prefix, prefix, 1, chans)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    adc = ('Board ADC Inputs', 'ADC', 1, [('ADC-00', 3, True), ('ADC-01', 3, False)])
    din = ('Board Digital Inputs', 'DIN', 1, [('DIN-00', 4, True), ('DIN-01', 4, True)])
    dout = ('Board Digital Outputs', 'DOUT', 1, [('DOUT-00', 5, True)])
    # A port with no headstage: disabled, no channels (Intan's readers
    # read no channel records for a disabled group).
    off = ('Port C', 'C', 0, [])
    # Version 1.0: 60-sample blocks, unsigned timestamps, no temperature
    # sensors, board mode or reference channel in the header.
    rhd(p('v1_0.rhd'), 1, 0, [port('A', 5, naux=3, nvdd=1, disabled=(2,)), adc, din], 3)
    # 1.1: temperature sensors.
    rhd(p('v1_1.rhd'), 1, 1, [port('A', 4, naux=3, nvdd=1), off, adc], 3, temp=2)
    # 1.2: signed timestamps (pre-trigger data before 0).
    rhd(p('v1_2.rhd'), 1, 2, [port('A', 3, naux=1), dout], 4, t0=-120)
    # 1.3: board mode.
    rhd(p('v1_3.rhd'), 1, 3, [port('A', 4), adc], 2, board_mode=13)
    # 2.0: 128-sample blocks, reference channel; notch at 60 Hz.
    rhd(p('v2_0.rhd'), 2, 0, [port('A', 6, naux=3, nvdd=1), port('B', 2), adc, din, dout], 3, notch=2)
    # 3.4 as Intan RHX writes it: two ports, notch at 50 Hz (applied by RHX).
    rhd(p('v3_4.rhd'), 3, 4, [port('A', 8, naux=3, nvdd=1), port('B', 4, disabled=(0,)), off, adc, din], 3, notch=1, board_mode=13)
    # RHS: DC amplifier data saved, ADC, DAC and digital lines.
    dac = ('Analog Output Ports', 'ANALOG-OUT', 1, [('ANALOG-OUT-1', 4, True)])
    rdin = ('Digital Input Ports', 'DIGITAL-IN', 1, [('DIGITAL-IN-01', 5, True)])
    rdout = ('Digital Output Ports', 'DIGITAL-OUT', 1, [('DIGITAL-OUT-01', 6, True)])
    radc = ('Analog Input Ports', 'ANALOG-IN', 1, [('ANALOG-IN-1', 3, True), ('ANALOG-IN-2', 3, True)])
    rhs(p('v1_0.rhs'), 1, 0, [port('A', 4), radc, dac, rdin, rdout], 3, dc_saved=True)
    rhs(p('v3_4.rhs'), 3, 4, [port('A', 5, disabled=(1,)), port('B', 2), radc], 2, dc_saved=False, t0=256, notch=2)
    # A gap: the controller's timestamps jump by 1000 before block 2
    # (neo refuses such files; spikeline reports the gap).
    rhd(p('gap.rhd'), 3, 0, [port('A', 2)], 4, gap_at=2)


main()
