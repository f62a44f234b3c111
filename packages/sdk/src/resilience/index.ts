/**
 * `@aiwebtest/runbooks/resilience` — what a service imports to prevent incidents, and the runbook actions
 * that steer it during one.
 *
 * - {@link createProviderChain}: LLM calls through ordered providers (OpenRouter, then Ollama), each behind an
 *   opossum circuit breaker, with retries that honour `Retry-After`, API keys used in turn, a Redis response
 *   cache, request coalescing and prom-client metrics under the manual's names (RESILIENCE.md).
 * - {@link startBreakerControl}: breaker states forced open, closed or back to automatic for every replica of a
 *   service through Redis; actions {@link openBreaker}, {@link closeBreaker}, {@link resetBreaker},
 *   {@link switchToFallback} (BREAKER-CONTROL.md).
 * - {@link createRateLimiter} (GCRA or sliding window, atomic in Redis), {@link createRequestQueue} (bounded,
 *   drained at a global rate), strict mode and its actions (RATE-LIMITS.md).
 *
 * @module \@aiwebtest/runbooks/resilience
 */

// Provider chain
export { apiKeyFingerprint } from './api-keys';
// Breaker control across replicas
export {
  type BreakerApplied,
  type BreakerChange,
  type BreakerChangeParams,
  closeBreaker,
  ForceBreakerOptions,
  type ForceBreakerOptionsInput,
  openBreaker,
  ResetBreakerOptions,
  type ResetBreakerOptionsInput,
  resetBreaker,
  SwitchToFallbackOptions,
  type SwitchToFallbackOptionsInput,
  switchToFallback,
} from './breaker-actions';
export {
  type BreakerControl,
  BreakerControlOptions,
  type BreakerControlOptionsInput,
  ForceOptions,
  type ForceOptionsInput,
  startBreakerControl,
} from './breaker-control';
export { BreakerControlError, isBreakerControlError } from './breaker-control-errors';
export { type BreakerKeys, breakerKeys, breakerRef, DEFAULT_BREAKER_PREFIX } from './breaker-control-keys';
export type { ForcedRecord, ReplicaReport, ReplicaStatus } from './breaker-control-store';
export {
  type BreakerState,
  type BreakerSwitch,
  type ForcedState,
  type LocalBreakerSwitch,
  localBreakerSwitch,
} from './breaker-switch';
export { LLM_DURATION_BUCKETS, OUTCOMES, type Outcome } from './llm-metrics';
export { ProviderName, redisRef, ServiceName } from './names';
export { OllamaProviderOptions, ollamaProvider } from './ollama';
export { OpenRouterProviderOptions, openRouterProvider } from './openrouter';
export {
  type AttemptOutcome,
  type AttemptRecord,
  type BreakerStateEvent,
  type ChainHealth,
  type ChatOptions,
  type ChatResult,
  createProviderChain,
  type FallbackEvent,
  type ProviderChain,
  ProviderChainOptions,
  type ProviderHealth,
  type RetryEvent,
} from './provider-chain';
export {
  type FallbackReason,
  isProviderHttpError,
  isProvidersUnavailableError,
  isProviderUnreachableError,
  type ProviderFailure,
  ProviderHttpError,
  ProviderResponseError,
  ProvidersUnavailableError,
  ProviderUnreachableError,
} from './provider-errors';
export { BreakerOptions, type BreakerOptionsInput } from './provider-options';
export {
  type ChatAnswer,
  ChatMessage,
  type ChatProvider,
  ChatRequest,
  type ProviderCallContext,
  type TokenUsage,
  wireMessages,
} from './provider-request';
// Rate limits, request queue, strict mode
export {
  createRateLimiter,
  type RateLimitDecision,
  type RateLimiter,
  RateLimiterOptions,
  type RateLimiterOptionsInput,
  RateLimitOverride,
} from './rate-limiter';
export {
  createRequestQueue,
  type DeadLetter,
  type Delivery,
  ProcessOptions,
  type ProcessOptionsInput,
  type RequestQueue,
  RequestQueueOptions,
  type RequestQueueOptionsInput,
  type RequestQueueStats,
} from './request-queue';
export { isQueueFullError, QueueFullError } from './request-queue-errors';
export { type CachedAnswer, ResponseCacheError, ResponseCacheOptions } from './response-cache';
export {
  backoffDelay,
  ProviderRetryOptions,
  type ProviderRetryOptionsInput,
  parseRetryAfter,
} from './retry-policy';
export {
  DisableStrictModeOptions,
  type DisableStrictModeOptionsInput,
  type DisableStrictModeParams,
  disableStrictMode,
  EnableStrictModeOptions,
  type EnableStrictModeOptionsInput,
  type EnableStrictModeParams,
  enableStrictMode,
  readStrictMode,
  StrictModeLimiter,
  type StrictModeSetting,
} from './strict-mode';
export { type EffectiveLimits, StrictModeState, strictLimits, strictModeKey } from './strict-mode-state';
