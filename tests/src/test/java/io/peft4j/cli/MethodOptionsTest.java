package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.peft.TargetModules;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** --variant, --config, --set and the shortcuts, read through the method's registration only. */
class MethodOptionsTest {
    @TempDir
    Path tmp;

    static MethodOptions options(String... set) {
        MethodOptions o = new MethodOptions();
        o.set = List.of(set);
        return o;
    }

    static LoraConfig lora(MethodOptions o) {
        return (LoraConfig) o.resolve().config();
    }

    @Test
    void defaultsAreTheMethodsOwnAndEveryFieldTypeIsSetByName() {
        LoraConfig d = lora(new MethodOptions());
        assertEquals(8, d.r());
        assertEquals(8f, d.alpha(), "PEFT's default alpha, not a CLI one");
        assertEquals(TargetModules.allLinear(), d.targetModules());
        LoraConfig c = lora(options("r=6", "lora_alpha=12.5", "lora_dropout=0.25", "use_rslora=true", "init_lora_weights=gaussian",
                "target_modules=fc1, fc3"));
        assertEquals(6, c.r());
        assertEquals(12.5f, c.alpha());
        assertEquals(0.25f, c.dropout());
        assertTrue(c.useRsLora());
        assertEquals("gaussian", c.init());
        assertEquals(List.of("fc1", "fc3"), c.targetModules().toJson());
        assertEquals("fc\\d", lora(options("target_modules=\"fc\\d\"")).targetModules().toJson(), "a quoted value is PEFT's regex form");
        assertEquals("kaiming", lora(options("init_lora_weights=true")).init());
    }

    @Test
    void shortcutsMapToTheMethodsFieldsAndSetWinsOverConfigAndShortcuts() throws IOException {
        MethodOptions o = options("r=5");
        o.rank = "7";
        o.alpha = "3";
        o.dropout = "0.5";
        o.targets = "fc2";
        Path cfg = tmp.resolve("adapter_config.json");
        Files.writeString(cfg, "{\"peft_type\": \"LORA\", \"r\": 6, \"lora_alpha\": 12, \"use_rslora\": true, \"target_modules\": [\"fc1\"]}");
        o.config = cfg;
        LoraConfig c = lora(o);
        assertEquals(5, c.r(), "--set over --rank over --config");
        assertEquals(3f, c.alpha(), "--alpha over --config");
        assertEquals(0.5f, c.dropout());
        assertTrue(c.useRsLora(), "--config's value stays where nothing overrides it");
        assertEquals(List.of("fc2"), c.targetModules().toJson());
    }

    @Test
    void theMethodComesFromTheConfigsPeftTypeAndPeftsOwnFileLoadsAsItIs() {
        MethodOptions o = new MethodOptions();
        o.config = Path.of(MethodOptionsTest.class.getResource("/interop/peft/lora_r4/adapter/adapter_config.json").getPath());
        MethodOptions.Resolved r = o.resolve();
        assertEquals("lora", r.method().name());
        assertEquals(4, ((LoraConfig) r.config()).r());
        o.variant = "failing";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, o::resolve);
        assertTrue(e.getMessage().contains("--variant failing contradicts") && e.getMessage().contains("LORA"), e.getMessage());
    }

    /** Each bad value: one message that names the field and lists the method's valid fields. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "foo=1 | unknown field 'foo'",
            "r=abc | 'r' = 'abc' must be an integer",
            "r=4.5 | 'r' = 4.5 must be an integer",
            "r=0 | 'r' = 0 is out of range [1, 65536]",
            "r=99999999999999999999 | is out of range [1, 65536]",
            "lora_alpha=0 | 'lora_alpha' = 0 is out of range (0,",
            "lora_alpha=NaN | 'lora_alpha' = 'NaN' must be a number",
            "lora_dropout=1 | 'lora_dropout' = 1 is out of range [0, 1)",
            "use_rslora=maybe | 'use_rslora' = 'maybe' must be true or false",
            "init_lora_weights=pissa | 'init_lora_weights' = 'pissa' must be one of true | gaussian",
            "target_modules=fc1,,fc2 | blank name",
            "use_dora=maybe | 'use_dora' = 'maybe' must be true or false"})
    void aBadSetValueFailsNamingTheFieldAndTheValidFields(String set, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> options(set).resolve());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertTrue(e.getMessage().contains("valid fields: r, lora_alpha, lora_dropout, use_rslora, init_lora_weights, target_modules"), e.getMessage());
        assertTrue(e.getMessage().startsWith("lora: "), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), "one line");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "{\"peft_type\": \"LORA\", \"r\": 4.5} | 'r' = 4.5 must be an integer",
            "{\"peft_type\": \"LORA\", \"r\": 100000000000000000000} | 'r' = 100000000000000000000 is out of range",
            "{\"peft_type\": \"LORA\", \"r\": 4294967297} | is out of range [1, 65536]",
            "{\"peft_type\": \"LORA\", \"r\": \"8\"} | 'r' = '8' must be a number",
            "{\"peft_type\": \"LORA\", \"lora_alpha\": 1e400} | 'lora_alpha'",
            "{\"peft_type\": \"LORA\", \"bias\": \"all\"} | 'bias' = \"all\" is not implemented",
            "{\"peft_type\": \"LORA\", \"rank_pattern\": {\"fc1\": 0}} | field 'rank_pattern['fc1']' = 0 is out of range [1, 65536]",
            "{\"peft_type\": \"LORA\", \"my_field\": 1} | unknown field 'my_field'",
            "{\"peft_type\": \"NOPE\"} | unknown peft_type 'NOPE'",
            "{\"r\": 4} | no \"peft_type\"",
            "[1, 2] | expected a JSON object",
            "{\"peft_type\": \"LORA\", \"r\": 4,,} | adapter_config.json: not valid JSON at line 1, column"})
    void aBadConfigFileFailsInItsOwnTerms(String text, String expected) throws IOException {
        Path cfg = tmp.resolve("adapter_config.json");
        Files.writeString(cfg, text);
        MethodOptions o = new MethodOptions();
        o.config = cfg;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, o::resolve);
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), "one line: " + e.getMessage());
        assertTrue(!e.getMessage().contains("com.fasterxml") && !e.getMessage().contains("Source:"), "no parser internals: " + e.getMessage());
    }

    @Test
    void aSyntaxErrorNamesTheLineAndColumn() throws IOException {
        Path cfg = tmp.resolve("adapter_config.json");
        Files.writeString(cfg, "{\n  \"peft_type\": \"LORA\",\n  \"r\": 4\n  \"lora_alpha\": 8\n}\n");
        MethodOptions o = new MethodOptions();
        o.config = cfg;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, o::resolve);
        assertTrue(e.getMessage().startsWith(cfg + ": not valid JSON at line 4, column 3: "), e.getMessage());
        assertTrue(e.getMessage().contains("expecting comma"), e.getMessage());
    }

    @Test
    void aShortcutTheMethodLacksAndASetWithoutValueAreRefused() {
        MethodOptions o = new MethodOptions();
        o.variant = "failing";
        o.alpha = "2";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, o::resolve);
        assertTrue(e.getMessage().contains("--alpha does not apply to failing") && e.getMessage().contains("valid fields: r, target_modules"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> options("r").resolve());
        assertTrue(e.getMessage().contains("--set r: expected FIELD=VALUE"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> {
            MethodOptions m = new MethodOptions();
            m.variant = "nope";
            m.resolve();
        });
        assertTrue(e.getMessage().contains("unknown method 'nope'") && e.getMessage().contains("lora"), e.getMessage());
    }
}
