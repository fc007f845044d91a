export { ChatClient, ChatRequestError, type SendOptions, type ChatClientOptions, type ChatClientEvents, type ConnectionState, type WebSocketFactory, type WebSocketLike } from './chat-client.js';
