"use strict";
var __decorate = (this && this.__decorate) || function (decorators, target, key, desc) {
    var c = arguments.length, r = c < 3 ? target : desc === null ? desc = Object.getOwnPropertyDescriptor(target, key) : desc, d;
    if (typeof Reflect === "object" && typeof Reflect.decorate === "function") r = Reflect.decorate(decorators, target, key, desc);
    else for (var i = decorators.length - 1; i >= 0; i--) if (d = decorators[i]) r = (c < 3 ? d(r) : c > 3 ? d(target, key, r) : d(target, key)) || r;
    return c > 3 && r && Object.defineProperty(target, key, r), r;
};
var KafkaProducerModule_1;
Object.defineProperty(exports, "__esModule", { value: true });
exports.KafkaProducerModule = void 0;
const common_1 = require("@nestjs/common");
const kafka_producer_service_1 = require("./kafka-producer.service");
/**
 * The global producer module: import it once (in `AppModule`) and inject
 * `KafkaProducerService` anywhere. Imported as it is, it takes its settings from
 * the environment (`KAFKA_BROKERS`, `KAFKA_CLIENT_ID`, ...).
 */
let KafkaProducerModule = KafkaProducerModule_1 = class KafkaProducerModule {
    /** With options known up front (over the environment's). */
    static forRoot(options = {}) {
        return {
            module: KafkaProducerModule_1,
            global: true,
            providers: [{ provide: kafka_producer_service_1.KAFKA_PRODUCER_OPTIONS, useValue: options }, kafka_producer_service_1.KafkaProducerService],
            exports: [kafka_producer_service_1.KafkaProducerService],
        };
    }
    /** With options computed by a factory, e.g. `inject: [ConfigService]`. */
    static forRootAsync(options) {
        return {
            module: KafkaProducerModule_1,
            global: true,
            imports: options.imports ?? [],
            providers: [
                { provide: kafka_producer_service_1.KAFKA_PRODUCER_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] },
                kafka_producer_service_1.KafkaProducerService,
            ],
            exports: [kafka_producer_service_1.KafkaProducerService],
        };
    }
};
exports.KafkaProducerModule = KafkaProducerModule;
exports.KafkaProducerModule = KafkaProducerModule = KafkaProducerModule_1 = __decorate([
    (0, common_1.Global)(),
    (0, common_1.Module)({
        providers: [{ provide: kafka_producer_service_1.KAFKA_PRODUCER_OPTIONS, useValue: {} }, kafka_producer_service_1.KafkaProducerService],
        exports: [kafka_producer_service_1.KafkaProducerService],
    })
], KafkaProducerModule);
