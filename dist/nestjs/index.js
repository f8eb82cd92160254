"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.toKafkaLogger = exports.KafkaProducerService = exports.KAFKA_PRODUCER_OPTIONS = exports.KafkaProducerModule = exports.PLATFORM_TOPICS = exports.defineKafkaConfig = exports.BaseKafkaConsumerService = void 0;
/**
 * The NestJS layer of kafka-napi: a global producer module, a base class for
 * consumers and the centralised config helper. `@nestjs/common` and
 * `@nestjs/core` are peer dependencies; the core package works without them.
 */
var base_kafka_consumer_service_1 = require("./base-kafka-consumer.service");
Object.defineProperty(exports, "BaseKafkaConsumerService", { enumerable: true, get: function () { return base_kafka_consumer_service_1.BaseKafkaConsumerService; } });
var kafka_config_1 = require("./kafka-config");
Object.defineProperty(exports, "defineKafkaConfig", { enumerable: true, get: function () { return kafka_config_1.defineKafkaConfig; } });
Object.defineProperty(exports, "PLATFORM_TOPICS", { enumerable: true, get: function () { return kafka_config_1.PLATFORM_TOPICS; } });
var kafka_producer_module_1 = require("./kafka-producer.module");
Object.defineProperty(exports, "KafkaProducerModule", { enumerable: true, get: function () { return kafka_producer_module_1.KafkaProducerModule; } });
var kafka_producer_service_1 = require("./kafka-producer.service");
Object.defineProperty(exports, "KAFKA_PRODUCER_OPTIONS", { enumerable: true, get: function () { return kafka_producer_service_1.KAFKA_PRODUCER_OPTIONS; } });
Object.defineProperty(exports, "KafkaProducerService", { enumerable: true, get: function () { return kafka_producer_service_1.KafkaProducerService; } });
var logger_1 = require("./logger");
Object.defineProperty(exports, "toKafkaLogger", { enumerable: true, get: function () { return logger_1.toKafkaLogger; } });
