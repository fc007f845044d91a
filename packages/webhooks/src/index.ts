export { WebhookDispatcher, type FailureReason, type WebhookDispatcherOptions, type WebhookLog, type WebhookObserver, type WebhookSettings, type WebhookStatus } from './dispatcher.js';
export { WEBHOOK_HEADERS, WebhookSigner, webhookKey } from './signature.js';
