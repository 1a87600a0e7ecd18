/**
 * Tied-LoRA (Renduchintala, Konuk, Kuchaiev, NAACL 2024), which PEFT lacks: ΔW_l = (alpha/r)·diag(v_l)·B·diag(u_l)·A
 * with A and B each tied across layers or per layer, trained or frozen, and u, v trained or fixed at 1.
 *
 * <p>Files: PEFT's layout with peft4j's own {@code peft_type} "TIEDLORA". adapter_config.json fields:
 * {@code r} (8), {@code lora_alpha} (8), {@code lora_dropout} (0), {@code preset} (tied-ab-uv; see
 * {@link io.peft4j.variants.tiedlora.TiedLoraConfig#PRESETS}), {@code tie_a}, {@code tie_b}, {@code train_a},
 * {@code train_b}, {@code train_u}, {@code train_v} (each "preset", true or false; written resolved) and
 * {@code target_modules}. adapter_model.safetensors keys: a tied A or B once as {@code base_model.tiedlora_A}
 * [r, max d_in] / {@code base_model.tiedlora_B} [max d_out, r]; per layer
 * {@code base_model.model.<layer>.tiedlora_A} [r, d_in] / {@code tiedlora_B} [d_out, r] when not tied, and
 * {@code tiedlora_u} [r] / {@code tiedlora_v} [d_out] when trained.
 *
 * <p>{@link io.peft4j.variants.tiedlora.ScaledLowRankAdapter} is the per-layer adapter of this method and of VeRA,
 * which is the vera-like configuration with PEFT's names and initialisation.
 */
package io.peft4j.variants.tiedlora;
