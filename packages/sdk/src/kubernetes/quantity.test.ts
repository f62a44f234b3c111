import { describe, expect, it } from 'vitest';
import { formatCpu, formatMemory, parseQuantity, quantityOrUndefined } from './quantity';

describe('parseQuantity', () => {
  it('reads CPU in cores from cores, millicores, micro- and nanocores', () => {
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity('1.5')).toBe(1.5);
    expect(parseQuantity('250m')).toBeCloseTo(0.25, 12);
    expect(parseQuantity('500u')).toBeCloseTo(0.0005, 12);
    expect(parseQuantity('123456789n')).toBeCloseTo(0.123456789, 12);
    expect(parseQuantity('.5')).toBe(0.5);
    expect(parseQuantity('3.')).toBe(3);
  });

  it('reads memory in bytes from binary and decimal suffixes', () => {
    expect(parseQuantity('1Ki')).toBe(1024);
    expect(parseQuantity('128Mi')).toBe(128 * 1024 * 1024);
    expect(parseQuantity('1.5Gi')).toBe(1.5 * 1024 ** 3);
    expect(parseQuantity('2Ti')).toBe(2 * 1024 ** 4);
    expect(parseQuantity('1Pi')).toBe(1024 ** 5);
    expect(parseQuantity('1Ei')).toBe(1024 ** 6);
    expect(parseQuantity('1k')).toBe(1000);
    expect(parseQuantity('64M')).toBe(64e6);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1T')).toBe(1e12);
    expect(parseQuantity('1P')).toBe(1e15);
    expect(parseQuantity('2E')).toBe(2e18);
  });

  it('reads decimal exponents, either case and signed', () => {
    expect(parseQuantity('1e9')).toBe(1e9);
    expect(parseQuantity('129e6')).toBe(129e6);
    expect(parseQuantity('5E3')).toBe(5000);
    expect(parseQuantity('25e-2')).toBeCloseTo(0.25, 12);
    expect(parseQuantity('1e+3')).toBe(1000);
  });

  it('keeps signs, trims whitespace and passes numbers through', () => {
    expect(parseQuantity('-100m')).toBeCloseTo(-0.1, 12);
    expect(parseQuantity('+1Ki')).toBe(1024);
    expect(parseQuantity(' 10Mi ')).toBe(10 * 2 ** 20);
    expect(parseQuantity(0.25)).toBe(0.25);
    expect(parseQuantity('0')).toBe(0);
  });

  it.each(['', 'abc', '1K', '1KB', '1mi', '1 Gi', 'Mi', '1e', '1.2.3', '--1', '1Gi2'])(
    'refuses %j, naming it',
    (text) => {
      expect(() => parseQuantity(text)).toThrow(RangeError);
      expect(() => parseQuantity(text)).toThrow(`"${text}"`);
    },
  );

  it('refuses non-finite numbers', () => {
    expect(() => parseQuantity(Number.NaN)).toThrow(RangeError);
    expect(() => parseQuantity(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('quantityOrUndefined', () => {
  it('is undefined for missing or malformed quantities instead of throwing', () => {
    expect(quantityOrUndefined(undefined)).toBeUndefined();
    expect(quantityOrUndefined(null)).toBeUndefined();
    expect(quantityOrUndefined('')).toBeUndefined();
    expect(quantityOrUndefined('lots')).toBeUndefined();
    expect(quantityOrUndefined('512Mi')).toBe(512 * 2 ** 20);
  });
});

describe('formatting like kubectl top', () => {
  it('prints CPU in whole millicores', () => {
    expect(formatCpu(0)).toBe('0m');
    expect(formatCpu(0.25)).toBe('250m');
    expect(formatCpu(2)).toBe('2000m');
    expect(formatCpu(0.0000004)).toBe('1m');
  });

  it('prints memory in mebibytes, or kibibytes below one', () => {
    expect(formatMemory(0)).toBe('0Mi');
    expect(formatMemory(128 * 2 ** 20)).toBe('128Mi');
    expect(formatMemory(1.6 * 2 ** 30)).toBe('1638Mi');
    expect(formatMemory(300 * 1024)).toBe('300Ki');
  });
});
