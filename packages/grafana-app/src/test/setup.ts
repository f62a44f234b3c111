/**
 * Setup of every test file (vitest `setupFiles`, jsdom): what jsdom lacks and @grafana/ui needs at import
 * or render time, jest-dom's matchers, and unmounting after each test.
 */
import '@testing-library/jest-dom/vitest';
import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

if (typeof window !== 'undefined') {
  // uPlot (imported by @grafana/ui) calls matchMedia at import time; jsdom has none.
  if (!window.matchMedia) {
    Object.defineProperty(window, 'matchMedia', {
      writable: true,
      configurable: true,
      value: (query: string): MediaQueryList =>
        ({
          matches: false,
          media: query,
          onchange: null,
          addListener: () => {},
          removeListener: () => {},
          addEventListener: () => {},
          removeEventListener: () => {},
          dispatchEvent: () => false,
        }) as MediaQueryList,
    });
  }
  // jsdom implements no canvas: charts measure text with a 2D context. A stub that draws nothing.
  HTMLCanvasElement.prototype.getContext = function getContext(this: HTMLCanvasElement) {
    return new Proxy(
      { canvas: this, measureText: (text: string) => ({ width: text.length * 7 }) },
      {
        get: (target, key) => (key in target ? target[key as keyof typeof target] : () => undefined),
        set: () => true,
      },
    );
  } as unknown as HTMLCanvasElement['getContext'];
  // ResizeObserver is used by Grafana's layout components (AutoSizer, charts).
  if (!('ResizeObserver' in window)) {
    class ResizeObserverStub {
      observe() {}
      unobserve() {}
      disconnect() {}
    }
    Object.defineProperty(window, 'ResizeObserver', {
      value: ResizeObserverStub,
      configurable: true,
      writable: true,
    });
    Object.defineProperty(globalThis, 'ResizeObserver', {
      value: ResizeObserverStub,
      configurable: true,
      writable: true,
    });
  }
  // IntersectionObserver: Grafana's Drawer and Select menus create one when they open (ScrollIndicators).
  if (!('IntersectionObserver' in globalThis)) {
    class IntersectionObserverStub {
      observe() {}
      unobserve() {}
      disconnect() {}
      takeRecords() {
        return [];
      }
    }
    Object.defineProperty(globalThis, 'IntersectionObserver', {
      value: IntersectionObserverStub,
      configurable: true,
      writable: true,
    });
  }
  afterEach(() => cleanup());
}
