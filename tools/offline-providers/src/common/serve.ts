// Glue between per-resource-type handlers and @pulumi/pulumi/provider's
// Provider interface (which the SDK serves over the ResourceProvider gRPC
// protocol the engine speaks).

import type * as provider from "@pulumi/pulumi/provider";
import { RawMap, typeFromUrn } from "./props";

type Awaitable<T> = T | Promise<T>;

export interface ResourceHandler {
    check?(urn: string, olds: RawMap, news: RawMap): Awaitable<provider.CheckResult>;
    diff(id: string, urn: string, olds: RawMap, news: RawMap): Awaitable<provider.DiffResult>;
    create(urn: string, inputs: RawMap): Promise<provider.CreateResult>;
    read?(id: string, urn: string, props: RawMap): Awaitable<provider.ReadResult>;
    update?(id: string, urn: string, olds: RawMap, news: RawMap): Awaitable<provider.UpdateResult>;
    delete?(id: string, urn: string, props: RawMap): Awaitable<void>;
}

/** The SDK hands properties over as `any`; they are always a (possibly empty) object. */
function asMap(v: unknown): RawMap {
    return typeof v === "object" && v !== null ? (v as RawMap) : {};
}

/** Node >= 22 is what the project pins; fail loudly and early on anything older. */
export function requireNode22(): void {
    const major = Number(process.versions.node.split(".")[0]);
    if (!(major >= 22)) {
        process.stderr.write(`offline provider stand-in needs Node >= 22, but ${process.execPath} is ${process.version}; ` + "set PULUMI_NODEJS_NODE to a Node 22 binary\n");
        process.exit(1);
    }
}

export function makeProvider(version: string, handlers: Record<string, ResourceHandler>, extra: { schema: string; cancel?: () => Promise<void> }): provider.Provider {
    const handlerFor = (urn: string): ResourceHandler => {
        const type = typeFromUrn(urn);
        const h = handlers[type];
        if (!h) {
            throw new Error(`resource type ${type} is not implemented by this offline stand-in provider ` + `(it implements ${Object.keys(handlers).join(", ")}); see docs/offline-providers.md`);
        }
        return h;
    };
    return {
        version,
        schema: extra.schema,
        async check(urn, olds, news) {
            const h = handlerFor(urn);
            return h.check ? await h.check(urn, asMap(olds), asMap(news)) : { inputs: asMap(news) };
        },
        async diff(id, urn, olds, news) {
            return await handlerFor(urn).diff(id, urn, asMap(olds), asMap(news));
        },
        async create(urn, inputs) {
            return await handlerFor(urn).create(urn, asMap(inputs));
        },
        async read(id, urn, props) {
            const h = handlerFor(urn);
            return h.read ? await h.read(id, urn, asMap(props)) : { id, props: asMap(props) };
        },
        async update(id, urn, olds, news) {
            const h = handlerFor(urn);
            if (!h.update) {
                throw new Error(`${typeFromUrn(urn)} does not support in-place updates`);
            }
            return await h.update(id, urn, asMap(olds), asMap(news));
        },
        async delete(id, urn, props) {
            const h = handlerFor(urn);
            if (h.delete) {
                await h.delete(id, urn, asMap(props));
            }
        },
        cancel: extra.cancel,
    };
}
